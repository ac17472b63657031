using System.ComponentModel;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;
using Sutazai.Inference;
using Sutazai.Server.Tests.Agents;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Mcp;

/// <summary>The tools of the tiny external MCP server the tests register: <c>add</c> (a side effect as far as SutazAI knows) and a read-only <c>echo</c>.</summary>
[McpServerToolType]
public static class ExternalTestTools
{
    [McpServerTool(Name = "add"), Description("Adds two integers.")]
    public static int Add(int a, int b) => a + b;

    [McpServerTool(Name = "echo", ReadOnly = true), Description("Echoes text.")]
    public static string Echo(string text) => "echo: " + text;
}

/// <summary>SutazAI on a real Kestrel port with the scripted model, and a second MCP server (built with the SDK) on loopback.</summary>
public abstract class McpFixtureBase(DbProvider provider) : IAsyncLifetime
{
    public ScriptedModels Models { get; } = new();

    public TestApp App { get; private set; } = null!;

    public Uri BaseAddress { get; private set; } = null!;

    public HttpClient Admin { get; private set; } = null!;

    public WebApplication External { get; private set; } = null!;

    public Uri ExternalMcp { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        App = TestApp.Create(provider, AgentAppFixture.Settings, services: s => s.AddSingleton<IModelProvider>(Models));
        BaseAddress = App.StartKestrel();
        using var anon = Http();
        var admin = await Accounts.RegisterAsync(anon);
        Admin = Http((await Accounts.LoginAsync(anon, admin.Username)).AccessToken);

        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Services.AddMcpServer().WithHttpTransport().WithTools([typeof(ExternalTestTools)]);
        External = builder.Build();
        External.MapMcp("/mcp");
        await External.StartAsync();
        ExternalMcp = new Uri(External.Urls.First() + "/mcp");
    }

    public HttpClient Http(string? bearer = null)
    {
        var client = new HttpClient { BaseAddress = BaseAddress };
        if (bearer is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        return client;
    }

    /// <summary>A new user: a JWT client and an API key (sk-sz-…) with <paramref name="scopes"/> (the MCP tools' two by default).</summary>
    public async Task<(HttpClient Client, string ApiKey)> UserAsync(params string[] scopes)
    {
        using var anon = Http();
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        var client = Http(tokens.AccessToken);
        var created = await client.PostAsJsonAsync("/api/v1/keys", new { name = "mcp", scopes = scopes.Length > 0 ? scopes : ["knowledge", "agents"] });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        return (client, (await created.ReadJsonAsync()).GetProperty("key").GetString()!);
    }

    public async Task<McpClient> McpAsync(string credential) =>
        await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = new Uri(BaseAddress, "/mcp"),
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + credential },
        }));

    public async Task DisposeAsync()
    {
        Admin.Dispose();
        await External.DisposeAsync();
        await App.DisposeAsync();
    }
}

public sealed class McpFixture() : McpFixtureBase(DbProvider.Sqlite);

public sealed class PostgresMcpFixture() : McpFixtureBase(DbProvider.Postgres);

public sealed class SqliteMcpTests(McpFixture fixture) : McpTests(fixture), IClassFixture<McpFixture>;

public sealed class PostgresMcpTests(PostgresMcpFixture fixture) : McpTests(fixture), IClassFixture<PostgresMcpFixture>;

public abstract class McpTests(McpFixtureBase fixture)
{
    private static string Text(CallToolResult result) => string.Concat(result.Content.OfType<TextContentBlock>().Select(b => b.Text));

    private static JsonElement Json(CallToolResult result) => JsonDocument.Parse(Text(result)).RootElement.Clone();

    [Fact]
    public async Task McpClient_WithApiKey_SearchesKnowledge_AndStartsAndReadsItsOwnRuns()
    {
        var (alice, aliceKey) = await fixture.UserAsync();
        var docId = await Documents.UploadIndexedAsync(alice, "falcons.md", "# Falcons\n\nPeregrine falcons dive at more than three hundred kilometres per hour.");
        var agent = await Runs.CreateAgentAsync(alice, "mcp-runner", ["calculator"]);
        var key = "mcp-run-" + Guid.NewGuid().ToString("N");
        fixture.Models.Script(key, ScriptedModels.Answer("Done over MCP."));

        await using var mcp = await fixture.McpAsync(aliceKey);
        var tools = await mcp.ListToolsAsync();
        Assert.Equal(["get_agent_run", "knowledge_search", "list_agents", "start_agent_run"], tools.Select(t => t.Name).Order(StringComparer.Ordinal).ToArray());
        Assert.True(tools.Single(t => t.Name == "knowledge_search").ProtocolTool.Annotations?.ReadOnlyHint);

        var search = await mcp.CallToolAsync("knowledge_search", new Dictionary<string, object?> { ["query"] = "how fast do peregrine falcons dive" });
        Assert.NotEqual(true, search.IsError);
        var hit = Assert.Single(Json(search).GetProperty("results").EnumerateArray());
        Assert.Equal(docId, hit.GetProperty("documentId").GetGuid());
        Assert.Contains("three hundred kilometres", hit.GetProperty("text").GetString());

        var agents = Json(await mcp.CallToolAsync("list_agents"));
        var ids = agents.EnumerateArray().Select(a => a.GetProperty("id").GetString()).ToList();
        Assert.Contains("shell", ids);
        Assert.Contains(agent, ids);

        var started = await mcp.CallToolAsync("start_agent_run", new Dictionary<string, object?> { ["agent"] = agent, ["input"] = key });
        Assert.NotEqual(true, started.IsError);
        var runId = Json(started).GetProperty("runId").GetGuid();
        var done = await Runs.WaitForAsync(alice, runId, "succeeded", "failed");
        Assert.Equal("Done over MCP.", done.GetProperty("output").GetString());

        var viewed = await mcp.CallToolAsync("get_agent_run", new Dictionary<string, object?> { ["runId"] = runId });
        Assert.NotEqual(true, viewed.IsError);
        Assert.Equal("succeeded", Json(viewed).GetProperty("status").GetString());
        Assert.Equal("Done over MCP.", Json(viewed).GetProperty("output").GetString());

        var unknownAgent = await mcp.CallToolAsync("start_agent_run", new Dictionary<string, object?> { ["agent"] = "no-such-agent", ["input"] = "x" });
        Assert.True(unknownAgent.IsError);
        Assert.Contains("No agent 'no-such-agent' was found.", Text(unknownAgent));

        // Bob, with a JWT this time, cannot see Alice's run or her document.
        using var anon = fixture.Http();
        var (_, bobTokens) = await Accounts.RegisterAndLoginAsync(anon);
        await using var bob = await fixture.McpAsync(bobTokens.AccessToken);
        var stolen = await bob.CallToolAsync("get_agent_run", new Dictionary<string, object?> { ["runId"] = runId });
        Assert.True(stolen.IsError);
        Assert.Contains($"Run {runId} was not found.", Text(stolen));
        var bobSearch = await bob.CallToolAsync("knowledge_search", new Dictionary<string, object?> { ["query"] = "how fast do peregrine falcons dive" });
        Assert.Equal(0, Json(bobSearch).GetProperty("results").GetArrayLength());
    }

    [Fact]
    public async Task KnowledgeOnlyKey_SeesAndCallsOnlyKnowledgeSearch()
    {
        var (alice, key) = await fixture.UserAsync("knowledge");
        var docId = await Documents.UploadIndexedAsync(alice, "owls.md", "# Owls\n\nBarn owls hunt by sound in complete darkness.");
        await using var mcp = await fixture.McpAsync(key);
        Assert.Equal(["knowledge_search"], (await mcp.ListToolsAsync()).Select(t => t.Name).ToArray());
        var search = await mcp.CallToolAsync("knowledge_search", new Dictionary<string, object?> { ["query"] = "how do barn owls hunt" });
        Assert.NotEqual(true, search.IsError);
        Assert.Equal(docId, Json(search).GetProperty("results")[0].GetProperty("documentId").GetGuid());

        foreach (var tool in new[] { "list_agents", "get_agent_run" })
        {
            var refused = await Assert.ThrowsAnyAsync<ModelContextProtocol.McpException>(async () =>
                await mcp.CallToolAsync(tool, new Dictionary<string, object?> { ["runId"] = Guid.NewGuid() }));
            Assert.Contains("Access forbidden", refused.Message, StringComparison.OrdinalIgnoreCase);
        }
    }

    [Fact]
    public async Task AgentsOnlyKey_SeesOnlyTheAgentTools()
    {
        var (_, key) = await fixture.UserAsync("agents");
        await using var mcp = await fixture.McpAsync(key);
        Assert.Equal(["get_agent_run", "list_agents", "start_agent_run"], (await mcp.ListToolsAsync()).Select(t => t.Name).Order(StringComparer.Ordinal).ToArray());
        Assert.Contains("shell", Json(await mcp.CallToolAsync("list_agents")).EnumerateArray().Select(a => a.GetProperty("id").GetString()));
        await Assert.ThrowsAnyAsync<ModelContextProtocol.McpException>(async () =>
            await mcp.CallToolAsync("knowledge_search", new Dictionary<string, object?> { ["query"] = "owls" }));
    }

    [Fact]
    public async Task KeyWithNeitherAgentsNorKnowledge_Is403()
    {
        var (_, key) = await fixture.UserAsync("inference", "chat");
        using var client = fixture.Http(key);
        var initialize = """{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}""";
        using var request = new HttpRequestMessage(HttpMethod.Post, "/mcp") { Content = new StringContent(initialize, Encoding.UTF8, "application/json") };
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        var response = await client.SendAsync(request);
        await Identity.ApiKeysTests.AssertInsufficientScopeAsync(response, "agents knowledge");
    }

    [Fact]
    public async Task Mcp_WithoutOrWithBadCredentials_Is401()
    {
        using var anon = fixture.Http();
        var initialize = """{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}""";
        using var request = new HttpRequestMessage(HttpMethod.Post, "/mcp") { Content = new StringContent(initialize, Encoding.UTF8, "application/json") };
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        Assert.Equal(HttpStatusCode.Unauthorized, (await anon.SendAsync(request)).StatusCode);

        using var badKey = fixture.Http("sk-sz-not-a-real-key");
        using var again = new HttpRequestMessage(HttpMethod.Post, "/mcp") { Content = new StringContent(initialize, Encoding.UTF8, "application/json") };
        again.Headers.Accept.ParseAdd("application/json");
        again.Headers.Accept.ParseAdd("text/event-stream");
        Assert.Equal(HttpStatusCode.Unauthorized, (await badKey.SendAsync(again)).StatusCode);
    }

    [Fact]
    public async Task ExternalServerTools_AllWaitForApproval_WhateverTheServerClaims_UntilAnAdminPreApprovesOne()
    {
        var registered = await fixture.Admin.PostAsJsonAsync("/api/v1/admin/mcp-servers", new { name = "calc-box", url = fixture.ExternalMcp.ToString(), allowedUsers = new[] { "*" } });
        Assert.Equal(HttpStatusCode.Created, registered.StatusCode);
        var server = await registered.ReadJsonAsync();
        Assert.True(server.GetProperty("reachable").GetBoolean(), server.ToString());
        Assert.Equal(["*"], server.GetProperty("allowedUsers").EnumerateArray().Select(u => u.GetString()!));
        var tools = server.GetProperty("tools").EnumerateArray().ToDictionary(t => t.GetProperty("name").GetString()!,
            t => (t.GetProperty("readOnlyHint").GetBoolean(), t.GetProperty("sideEffects").GetBoolean(), t.GetProperty("risk").GetString()!, t.GetProperty("preApproved").GetBoolean()));
        Assert.Equal(new Dictionary<string, (bool, bool, string, bool)>
        {
            ["mcp_calc_box_add"] = (false, true, "high", false),
            ["mcp_calc_box_echo"] = (true, true, "medium", false),
        }, tools);

        var (client, _) = await fixture.UserAsync();
        var agent = await Runs.CreateAgentAsync(client, "mcp-user", ["mcp"]);
        var health = (await client.GetFromJsonAsync<JsonElement>($"/api/v1/agents/{agent}")).GetProperty("health");
        Assert.True(health.GetProperty("toolsAvailable").GetBoolean(), health.ToString());

        var addKey = "mcp-add-" + Guid.NewGuid().ToString("N");
        fixture.Models.Script(addKey, ScriptedModels.Call("mcp_calc_box_add", new { a = 2, b = 40 }), ScriptedModels.Answer("The sum is 42."));
        var addRun = await Runs.StartAsync(client, agent, addKey);
        var waiting = await Runs.WaitForAsync(client, addRun, "waiting_approval");
        var pending = Assert.Single(waiting.GetProperty("pendingApprovals").EnumerateArray());
        Assert.Equal("mcp_calc_box_add", pending.GetProperty("tool").GetString());
        Assert.Equal(["model", "approval_request"], Runs.StepKinds(waiting));
        var decide = await client.PostAsJsonAsync($"/api/v1/runs/{addRun}/approvals/{pending.GetProperty("id").GetGuid()}", new { approve = true });
        Assert.Equal(HttpStatusCode.OK, decide.StatusCode);
        var added = await Runs.WaitForAsync(client, addRun, "succeeded", "failed");
        Assert.Equal("succeeded", added.GetProperty("status").GetString());
        Assert.Equal(["model", "approval_request", "approval", "tool_call", "tool_result", "model"], Runs.StepKinds(added));
        var addResult = added.GetProperty("steps")[4].GetProperty("data");
        Assert.Equal(JsonValueKind.Null, addResult.GetProperty("error").ValueKind);
        Assert.Contains("42", addResult.GetProperty("result").GetRawText());

        // The server marks echo readOnlyHint: true; that is its claim, so the call still waits for the user.
        var echoKey = "mcp-echo-" + Guid.NewGuid().ToString("N");
        fixture.Models.Script(echoKey, ScriptedModels.Call("mcp_calc_box_echo", new { text = "hello falcon" }), ScriptedModels.Answer("Echoed."));
        var echoRun = await Runs.StartAsync(client, agent, echoKey);
        var asked = await Runs.WaitForAsync(client, echoRun, "succeeded", "failed", "waiting_approval");
        Assert.Equal("waiting_approval", asked.GetProperty("status").GetString());
        var echoApproval = Assert.Single(asked.GetProperty("pendingApprovals").EnumerateArray());
        Assert.Equal(("mcp_calc_box_echo", "medium"), (echoApproval.GetProperty("tool").GetString(), echoApproval.GetProperty("risk").GetString()));
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync($"/api/v1/runs/{echoRun}/approvals/{echoApproval.GetProperty("id").GetGuid()}", new { approve = true })).StatusCode);
        Assert.Equal("succeeded", (await Runs.WaitForAsync(client, echoRun, "succeeded", "failed")).GetProperty("status").GetString());

        // The admin decides: once pre-approved, echo runs at once.
        Assert.Equal(HttpStatusCode.OK, (await fixture.Admin.PutAsJsonAsync("/api/v1/admin/tools/mcp_calc_box_echo", new { preApproved = true })).StatusCode);
        var listed = await fixture.Admin.GetFromJsonAsync<JsonElement>("/api/v1/admin/mcp-servers");
        Assert.True(listed.EnumerateArray().Single(s => s.GetProperty("name").GetString() == "calc-box").GetProperty("tools").EnumerateArray()
            .Single(t => t.GetProperty("name").GetString() == "mcp_calc_box_echo").GetProperty("preApproved").GetBoolean());
        var trustedKey = "mcp-echo-" + Guid.NewGuid().ToString("N");
        fixture.Models.Script(trustedKey, ScriptedModels.Call("mcp_calc_box_echo", new { text = "hello falcon" }), ScriptedModels.Answer("Echoed."));
        var echoed = await Runs.WaitForAsync(client, await Runs.StartAsync(client, agent, trustedKey), "succeeded", "failed", "waiting_approval");
        Assert.Equal("succeeded", echoed.GetProperty("status").GetString());
        Assert.Equal(["model", "tool_call", "tool_result", "model"], Runs.StepKinds(echoed));
        Assert.Contains("echo: hello falcon", echoed.GetProperty("steps")[2].GetProperty("data").GetProperty("result").GetRawText());
    }

    private async Task<(HttpClient Client, string Username)> NamedUserAsync()
    {
        using var anon = fixture.Http();
        var user = await Accounts.RegisterAsync(anon);
        return (fixture.Http((await Accounts.LoginAsync(anon, user.Username)).AccessToken), user.Username);
    }

    /// <summary>Starts a run that calls <paramref name="tool"/> once; returns the run once it waits or ends.</summary>
    private async Task<JsonElement> CallToolInARunAsync(HttpClient client, string agent, string tool)
    {
        var key = "mcp-allowed-" + Guid.NewGuid().ToString("N");
        fixture.Models.Script(key, ScriptedModels.Call(tool, new { a = 1, b = 2 }), ScriptedModels.Answer("done"));
        return await Runs.WaitForAsync(client, await Runs.StartAsync(client, agent, key), "waiting_approval", "succeeded", "failed");
    }

    [Fact]
    public async Task ExternalServer_ItsToolsAndHeaders_AreOnlyForTheUsersTheAdminAllowed()
    {
        var (alice, aliceName) = await NamedUserAsync();
        var (bob, bobName) = await NamedUserAsync();
        async Task AssertInvalid(object body, string message)
        {
            var response = await fixture.Admin.PostAsJsonAsync("/api/v1/admin/mcp-servers", body);
            Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
            var errors = (await response.ReadJsonAsync()).GetProperty("errors");
            Assert.Equal(["allowedUsers"], errors.EnumerateObject().Select(p => p.Name).ToArray());
            Assert.Equal(message, errors.GetProperty("allowedUsers")[0].GetString());
        }
        await AssertInvalid(new { name = "team-box", url = fixture.ExternalMcp.ToString(), allowedUsers = new[] { aliceName, "no-such-user-x" } }, "No user named 'no-such-user-x'.");
        await AssertInvalid(new { name = "team-box", url = fixture.ExternalMcp.ToString(), allowedUsers = new[] { "*", aliceName } }, "\"*\" (everyone) stands alone; list user names, or [\"*\"].");
        Assert.False(await fixture.App.WithDbAsync(db => db.McpServers.AnyAsync(s => s.Name == "team-box")));

        var registered = await fixture.Admin.PostAsJsonAsync("/api/v1/admin/mcp-servers", new
        {
            name = "team-box", url = fixture.ExternalMcp.ToString(), headers = new Dictionary<string, string> { ["X-Team-Key"] = "team-secret" }, allowedUsers = new[] { aliceName.ToUpperInvariant() },
        });
        Assert.Equal(HttpStatusCode.Created, registered.StatusCode);
        var server = await registered.ReadJsonAsync();
        Assert.Equal([aliceName], server.GetProperty("allowedUsers").EnumerateArray().Select(u => u.GetString()!));
        var serverId = server.GetProperty("id").GetGuid();
        var aliceId = await fixture.App.WithDbAsync(db => db.Users.Where(u => u.UserName == aliceName).Select(u => u.Id).SingleAsync());
        Assert.Equal([aliceId], await fixture.App.WithDbAsync(db => db.McpServerUsers.Where(u => u.ServerId == serverId).Select(u => u.UserId).ToListAsync()));

        var aliceAgent = await Runs.CreateAgentAsync(alice, "team-tools", ["mcp"]);
        var bobAgent = await Runs.CreateAgentAsync(bob, "team-tools", ["mcp"]);
        var aliceRun = await CallToolInARunAsync(alice, aliceAgent, "mcp_team_box_add");
        Assert.Equal("waiting_approval", aliceRun.GetProperty("status").GetString());
        Assert.Equal("mcp_team_box_add", aliceRun.GetProperty("pendingApprovals")[0].GetProperty("tool").GetString());
        var bobRun = await CallToolInARunAsync(bob, bobAgent, "mcp_team_box_add");
        Assert.Equal("succeeded", bobRun.GetProperty("status").GetString());
        Assert.Equal(["model", "tool_result", "model"], Runs.StepKinds(bobRun));
        var refused = bobRun.GetProperty("steps")[1].GetProperty("data").GetProperty("error").GetString()!;
        Assert.StartsWith("There is no tool 'mcp_team_box_add'.", refused);
        Assert.DoesNotContain("mcp_team_box_", refused["There is no tool 'mcp_team_box_add'.".Length..]);

        // Moving the server to bob: his runs see it at once, alice's no longer do.
        var user = fixture.Http((await Accounts.LoginAsync(fixture.Http(), bobName)).AccessToken);
        Assert.Equal(HttpStatusCode.Forbidden, (await user.PutAsJsonAsync("/api/v1/admin/mcp-servers/team-box/allowed-users", new { allowedUsers = new[] { bobName } })).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await fixture.Admin.PutAsJsonAsync("/api/v1/admin/mcp-servers/no-box/allowed-users", new { allowedUsers = new[] { bobName } })).StatusCode);
        var missing = await fixture.Admin.PutAsJsonAsync("/api/v1/admin/mcp-servers/team-box/allowed-users", new { });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, missing.StatusCode);
        Assert.True((await missing.ReadJsonAsync()).GetProperty("errors").TryGetProperty("allowedUsers", out _));
        var moved = await fixture.Admin.PutAsJsonAsync("/api/v1/admin/mcp-servers/team-box/allowed-users", new { allowedUsers = new[] { bobName } });
        Assert.Equal(HttpStatusCode.OK, moved.StatusCode);
        Assert.Equal([bobName], (await moved.ReadJsonAsync()).GetProperty("allowedUsers").EnumerateArray().Select(u => u.GetString()!));
        var bobId = await fixture.App.WithDbAsync(db => db.Users.Where(u => u.UserName == bobName).Select(u => u.Id).SingleAsync());
        Assert.Equal([bobId], await fixture.App.WithDbAsync(db => db.McpServerUsers.Where(u => u.ServerId == serverId).Select(u => u.UserId).ToListAsync()));
        Assert.Equal("waiting_approval", (await CallToolInARunAsync(bob, bobAgent, "mcp_team_box_add")).GetProperty("status").GetString());
        var aliceAgain = await CallToolInARunAsync(alice, aliceAgent, "mcp_team_box_add");
        Assert.Equal(["model", "tool_result", "model"], Runs.StepKinds(aliceAgain));

        // Empty: admins only.
        Assert.Equal(HttpStatusCode.OK, (await fixture.Admin.PutAsJsonAsync("/api/v1/admin/mcp-servers/team-box/allowed-users", new { allowedUsers = Array.Empty<string>() })).StatusCode);
        Assert.Equal(["model", "tool_result", "model"], Runs.StepKinds(await CallToolInARunAsync(bob, bobAgent, "mcp_team_box_add")));
        var adminAgent = await Runs.CreateAgentAsync(fixture.Admin, "team-tools-" + Guid.NewGuid().ToString("N")[..6], ["mcp"]);
        Assert.Equal("waiting_approval", (await CallToolInARunAsync(fixture.Admin, adminAgent, "mcp_team_box_add")).GetProperty("status").GetString());
        Assert.Empty(await fixture.App.WithDbAsync(db => db.McpServerUsers.Where(u => u.ServerId == serverId).ToListAsync()));
        Assert.Equal(HttpStatusCode.NoContent, (await fixture.Admin.DeleteAsync("/api/v1/admin/mcp-servers/team-box")).StatusCode);
    }

    [Fact]
    public async Task AdminRoutes_ValidateInput_RejectDuplicates_AndAreAdminOnly()
    {
        var (user, _) = await fixture.UserAsync();
        Assert.Equal(HttpStatusCode.Forbidden, (await user.GetAsync("/api/v1/admin/mcp-servers")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await user.PostAsJsonAsync("/api/v1/admin/mcp-servers", new { name = "x", url = "http://127.0.0.1:1/mcp" })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await user.DeleteAsync("/api/v1/admin/mcp-servers/x")).StatusCode);

        async Task AssertInvalid(object body, string field)
        {
            var response = await fixture.Admin.PostAsJsonAsync("/api/v1/admin/mcp-servers", body);
            Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
            var errors = (await response.ReadJsonAsync()).GetProperty("errors");
            Assert.Equal([field], errors.EnumerateObject().Select(p => p.Name).ToArray());
        }
        await AssertInvalid(new { name = "Bad_Name", url = "http://127.0.0.1:1/mcp" }, "name");
        await AssertInvalid(new { url = "http://127.0.0.1:1/mcp" }, "name");
        await AssertInvalid(new { name = "ok-name", url = "ftp://127.0.0.1/mcp" }, "url");
        await AssertInvalid(new { name = "ok-name", url = "not a url" }, "url");
        await AssertInvalid(new { name = "ok-name", url = "http://127.0.0.1:1/mcp", headers = new Dictionary<string, string> { ["Bad Header"] = "v" } }, "headers");
        using var malformed = new StringContent("{\"name\":", Encoding.UTF8, "application/json");
        Assert.Equal(HttpStatusCode.BadRequest, (await fixture.Admin.PostAsync("/api/v1/admin/mcp-servers", malformed)).StatusCode);

        // Port 1 on loopback refuses: the server is stored, reported unreachable, with its header names but not values.
        var created = await fixture.Admin.PostAsJsonAsync("/api/v1/admin/mcp-servers",
            new { name = "dead-box", url = "http://127.0.0.1:1/mcp", headers = new Dictionary<string, string> { ["X-Api-Key"] = "secret-value" } });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var body = await created.ReadJsonAsync();
        Assert.False(body.GetProperty("reachable").GetBoolean());
        Assert.False(string.IsNullOrEmpty(body.GetProperty("error").GetString()));
        Assert.Equal(["X-Api-Key"], body.GetProperty("headers").EnumerateArray().Select(h => h.GetString()!).ToArray());
        Assert.DoesNotContain("secret-value", body.ToString());
        var stored = await fixture.App.WithDbAsync(db => Task.FromResult(db.McpServers.Single(s => s.Name == "dead-box")));
        Assert.Equal("""{"X-Api-Key":"secret-value"}""", stored.Headers);

        var duplicate = await fixture.Admin.PostAsJsonAsync("/api/v1/admin/mcp-servers", new { name = "dead-box", url = "http://127.0.0.1:2/mcp" });
        Assert.Equal(HttpStatusCode.Conflict, duplicate.StatusCode);

        var listed = await fixture.Admin.GetFromJsonAsync<JsonElement>("/api/v1/admin/mcp-servers");
        Assert.Contains("dead-box", listed.EnumerateArray().Select(s => s.GetProperty("name").GetString()));

        Assert.Equal(HttpStatusCode.NoContent, (await fixture.Admin.DeleteAsync("/api/v1/admin/mcp-servers/dead-box")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await fixture.Admin.DeleteAsync("/api/v1/admin/mcp-servers/dead-box")).StatusCode);
        Assert.False(await fixture.App.WithDbAsync(db => Task.FromResult(db.McpServers.Any(s => s.Name == "dead-box"))));
    }
}

using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sutazai.Data.Entities;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Agents;

public sealed class SqliteAgentRuntimeTests(AgentAppFixture fixture) : AgentRuntimeTests(fixture), IClassFixture<AgentAppFixture>;

public sealed class PostgresAgentRuntimeTests(PostgresAgentAppFixture fixture) : AgentRuntimeTests(fixture), IClassFixture<PostgresAgentAppFixture>;

public abstract class AgentRuntimeTests(AgentAppFixtureBase fixture)
{
    private static Func<IReadOnlyList<Microsoft.Extensions.AI.ChatMessage>, Microsoft.Extensions.AI.ChatResponse> Reply(Func<IReadOnlyList<Microsoft.Extensions.AI.ChatMessage>, Microsoft.Extensions.AI.ChatResponse> f) => f;

    private static string Key() => "task-" + Guid.NewGuid().ToString("N")[..10];

    private string Workspace(Guid runId) => Path.Combine(fixture.App.DataDir, "agents", "runs", runId.ToString("N"));

    [Fact]
    public async Task SideEffectTool_WaitsForApproval_AndRunsOnlyAfterIt()
    {
        var client = await fixture.UserAsync();
        var agent = await Runs.CreateAgentAsync(client, "approver", ["testkit"]);
        var key = Key();
        fixture.Models.Script(key,
            ScriptedModels.Call("write_marker", new { name = "marker.txt" }, "I will write the marker."),
            ScriptedModels.Answer("The marker is written."));

        var runId = await Runs.StartAsync(client, agent, key);
        var waiting = await Runs.WaitForAsync(client, runId, "waiting_approval");
        Assert.False(File.Exists(Path.Combine(Workspace(runId), "marker.txt")));
        var pending = Assert.Single(waiting.GetProperty("pendingApprovals").EnumerateArray());
        Assert.Equal("write_marker", pending.GetProperty("tool").GetString());
        Assert.Equal("marker.txt", pending.GetProperty("arguments").GetProperty("name").GetString());
        Assert.Equal("medium", pending.GetProperty("risk").GetString());
        Assert.Equal(["model", "approval_request"], Runs.StepKinds(waiting));

        var decide = await client.PostAsJsonAsync($"/api/v1/runs/{runId}/approvals/{pending.GetProperty("id").GetGuid()}", new { approve = true });
        Assert.Equal(HttpStatusCode.OK, decide.StatusCode);
        Assert.Equal("approved", (await decide.ReadJsonAsync()).GetProperty("status").GetString());

        var done = await Runs.WaitForAsync(client, runId, "succeeded", "failed");
        Assert.Equal("succeeded", done.GetProperty("status").GetString());
        Assert.Equal("The marker is written.", done.GetProperty("output").GetString());
        Assert.Equal(["model", "approval_request", "approval", "tool_call", "tool_result", "model"], Runs.StepKinds(done));
        Assert.Equal("written\n", await File.ReadAllTextAsync(Path.Combine(Workspace(runId), "marker.txt")));
        Assert.Equal(0, done.GetProperty("pendingApprovals").GetArrayLength());
        Assert.Equal(20, done.GetProperty("usage").GetProperty("inputTokens").GetInt64());
        var artifact = Assert.Single(done.GetProperty("artifacts").EnumerateArray());
        Assert.Equal("marker.txt", artifact.GetProperty("path").GetString());

        var again = await client.PostAsJsonAsync($"/api/v1/runs/{runId}/approvals/{pending.GetProperty("id").GetGuid()}", new { approve = false });
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
    }

    [Fact]
    public async Task Denial_IsRecorded_AndTheToolNeverRuns()
    {
        var client = await fixture.UserAsync();
        var agent = await Runs.CreateAgentAsync(client, "denied", ["testkit"]);
        var key = Key();
        fixture.Models.Script(key,
            ScriptedModels.Call("write_marker", new { name = "danger" }),
            ScriptedModels.Answer("Understood, nothing was written."));
        var runId = await Runs.StartAsync(client, agent, key);
        var waiting = await Runs.WaitForAsync(client, runId, "waiting_approval");
        var pending = waiting.GetProperty("pendingApprovals")[0];
        Assert.Equal("high", pending.GetProperty("risk").GetString());

        var decide = await client.PostAsJsonAsync($"/api/v1/runs/{runId}/approvals/{pending.GetProperty("id").GetGuid()}", new { approve = false });
        Assert.Equal(HttpStatusCode.OK, decide.StatusCode);
        var done = await Runs.WaitForAsync(client, runId, "succeeded", "failed");
        Assert.Equal(["model", "approval_request", "denial", "tool_result", "model"], Runs.StepKinds(done));
        var result = done.GetProperty("steps")[3].GetProperty("data");
        Assert.True(result.GetProperty("denied").GetBoolean());
        Assert.StartsWith("The user denied this call.", result.GetProperty("error").GetString());
        Assert.False(File.Exists(Path.Combine(Workspace(runId), "danger")));
        Assert.DoesNotContain(fixture.Tools.Invocations, i => i == "write_marker:danger");
    }

    [Fact]
    public async Task Approval_WithEditedArguments_RunsTheEditedCall()
    {
        var client = await fixture.UserAsync();
        var agent = await Runs.CreateAgentAsync(client, "edited", ["testkit"]);
        var key = Key();
        fixture.Models.Script(key, ScriptedModels.Call("write_marker", new { name = "proposed.txt" }), ScriptedModels.Answer("done"));
        var runId = await Runs.StartAsync(client, agent, key);
        var waiting = await Runs.WaitForAsync(client, runId, "waiting_approval");
        var approvalId = waiting.GetProperty("pendingApprovals")[0].GetProperty("id").GetGuid();

        var notObject = await client.PostAsJsonAsync($"/api/v1/runs/{runId}/approvals/{approvalId}", new { approve = true, editedArguments = "x" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, notObject.StatusCode);
        Assert.True((await notObject.ReadJsonAsync()).GetProperty("errors").TryGetProperty("editedArguments", out _));

        var decide = await client.PostAsJsonAsync($"/api/v1/runs/{runId}/approvals/{approvalId}", new { approve = true, editedArguments = new { name = "edited.txt" } });
        Assert.Equal(HttpStatusCode.OK, decide.StatusCode);
        var done = await Runs.WaitForAsync(client, runId, "succeeded", "failed");
        Assert.Equal("succeeded", done.GetProperty("status").GetString());
        Assert.True(File.Exists(Path.Combine(Workspace(runId), "edited.txt")));
        Assert.False(File.Exists(Path.Combine(Workspace(runId), "proposed.txt")));
        Assert.Equal(["model", "approval_request", "approval", "tool_call", "tool_result", "model"], Runs.StepKinds(done));
        var approval = done.GetProperty("steps")[2].GetProperty("data");
        Assert.True(approval.GetProperty("edited").GetBoolean());
        Assert.Equal("medium", approval.GetProperty("risk").GetString());
        Assert.Equal("""{"name":"edited.txt"}""", approval.GetProperty("arguments").GetRawText());
        Assert.Equal("""{"name":"edited.txt"}""", done.GetProperty("steps")[3].GetProperty("data").GetProperty("arguments").GetRawText());
        var stored = await fixture.App.WithDbAsync(db => db.AgentApprovals.AsNoTracking().SingleAsync(a => a.Id == approvalId));
        Assert.Equal(("approved", "medium", "medium", 0), (stored.Status, stored.Risk, stored.EditedRisk, stored.Round));
        Assert.Equal("""{"name":"proposed.txt"}""", stored.Arguments);
        Assert.Equal("""{"name":"edited.txt"}""", stored.EditedArguments);
    }

    [Fact]
    public async Task Approval_EditThatRaisesTheRisk_IsAskedAgainWithTheNewRisk_AndTheAuditShowsWhatRan()
    {
        var client = await fixture.UserAsync();
        var agent = await Runs.CreateAgentAsync(client, "escalated", ["testkit"]);
        var key = Key();
        fixture.Models.Script(key, ScriptedModels.Call("write_marker", new { name = "safe.txt" }), ScriptedModels.Answer("done"));
        var runId = await Runs.StartAsync(client, agent, key);
        var first = (await Runs.WaitForAsync(client, runId, "waiting_approval")).GetProperty("pendingApprovals")[0];
        var firstId = first.GetProperty("id").GetGuid();
        Assert.Equal("medium", first.GetProperty("risk").GetString());

        var decide = await client.PostAsJsonAsync($"/api/v1/runs/{runId}/approvals/{firstId}", new { approve = true, editedArguments = new { name = "danger-edited.txt" } });
        Assert.Equal(HttpStatusCode.OK, decide.StatusCode);
        var again = await Runs.WaitForAsync(client, runId, "waiting_approval", "succeeded", "failed");
        Assert.Equal("waiting_approval", again.GetProperty("status").GetString());
        var second = Assert.Single(again.GetProperty("pendingApprovals").EnumerateArray());
        var secondId = second.GetProperty("id").GetGuid();
        Assert.NotEqual(firstId, secondId);
        Assert.Equal("high", second.GetProperty("risk").GetString());
        Assert.Equal("""{"name":"danger-edited.txt"}""", second.GetProperty("arguments").GetRawText());
        Assert.Equal(["model", "approval_request", "approval_request"], Runs.StepKinds(again));
        var request = again.GetProperty("steps")[2].GetProperty("data");
        Assert.Equal((secondId, firstId, "medium", "high", 1), (request.GetProperty("approvalId").GetGuid(), request.GetProperty("previousApprovalId").GetGuid(),
            request.GetProperty("previousRisk").GetString(), request.GetProperty("risk").GetString(), request.GetProperty("round").GetInt32()));
        Assert.Equal("The edited arguments are high risk, the approved call was medium: approve the edited call again.", request.GetProperty("reason").GetString());
        Assert.False(File.Exists(Path.Combine(Workspace(runId), "danger-edited.txt")));
        Assert.False(File.Exists(Path.Combine(Workspace(runId), "safe.txt")));
        var escalated = await fixture.App.WithDbAsync(db => db.AgentApprovals.AsNoTracking().SingleAsync(a => a.Id == firstId));
        Assert.Equal((ApprovalStatus.Escalated, "medium", "high", 0), (escalated.Status, escalated.Risk, escalated.EditedRisk, escalated.Round));
        Assert.Equal(HttpStatusCode.Conflict, (await client.PostAsJsonAsync($"/api/v1/runs/{runId}/approvals/{firstId}", new { approve = true })).StatusCode);

        Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync($"/api/v1/runs/{runId}/approvals/{secondId}", new { approve = true })).StatusCode);
        var done = await Runs.WaitForAsync(client, runId, "succeeded", "failed");
        Assert.Equal("succeeded", done.GetProperty("status").GetString());
        Assert.Equal(["model", "approval_request", "approval_request", "approval", "tool_call", "tool_result", "model"], Runs.StepKinds(done));
        var approval = done.GetProperty("steps")[3].GetProperty("data");
        Assert.Equal((secondId, "high", 1, false),
            (approval.GetProperty("approvalId").GetGuid(), approval.GetProperty("risk").GetString(), approval.GetProperty("round").GetInt32(), approval.GetProperty("edited").GetBoolean()));
        Assert.Equal("""{"name":"danger-edited.txt"}""", done.GetProperty("steps")[4].GetProperty("data").GetProperty("arguments").GetRawText());
        Assert.Equal("written\n", await File.ReadAllTextAsync(Path.Combine(Workspace(runId), "danger-edited.txt")));
        Assert.False(File.Exists(Path.Combine(Workspace(runId), "safe.txt")));

        var admin = fixture.App.Client(fixture.AdminTokens.AccessToken);
        var audit = (await (await admin.GetAsync("/api/v1/admin/approvals?limit=1000")).ReadJsonAsync()).EnumerateArray()
            .Where(a => a.GetProperty("runId").GetGuid() == runId).ToList();
        Assert.Equal([(secondId, 1, "approved", "high"), (firstId, 0, "escalated", "medium")],
            audit.Select(a => (a.GetProperty("id").GetGuid(), a.GetProperty("round").GetInt32(), a.GetProperty("status").GetString()!, a.GetProperty("risk").GetString()!)));
        Assert.Equal("""{"name":"danger-edited.txt"}""", audit[0].GetProperty("executedArguments").GetRawText());
        Assert.Equal(JsonValueKind.Null, audit[1].GetProperty("executedArguments").ValueKind);
        Assert.Equal("""{"name":"safe.txt"}""", audit[1].GetProperty("arguments").GetRawText());
        Assert.Equal("""{"name":"danger-edited.txt"}""", audit[1].GetProperty("editedArguments").GetRawText());
        Assert.Equal("high", audit[1].GetProperty("editedRisk").GetString());
    }

    [Fact]
    public async Task ReadOnlyTool_RunsWithoutApproval_AndTheModelSeesItsResult()
    {
        var client = await fixture.UserAsync();
        var agent = await Runs.CreateAgentAsync(client, "reader", ["testkit"]);
        var key = Key();
        fixture.Models.Script(key,
            ScriptedModels.Call("echo", new { text = "hello" }),
            Reply(messages => ScriptedModels.Answer("model saw: " + messages.Last().Contents.OfType<Microsoft.Extensions.AI.FunctionResultContent>().Single().Result)));
        var runId = await Runs.StartAsync(client, agent, key);
        var done = await Runs.WaitForAsync(client, runId, "succeeded", "failed");
        Assert.Equal(["model", "tool_call", "tool_result", "model"], Runs.StepKinds(done));
        Assert.Equal("model saw: {\"echoed\":\"hello\"}", done.GetProperty("output").GetString());
    }

    [Fact]
    public async Task PreApprovedTool_RunsWithoutAsking_OnlyAdminsMayPreApprove()
    {
        var admin = fixture.App.Client(fixture.AdminTokens.AccessToken);
        var user = await fixture.UserAsync();
        Assert.Equal(HttpStatusCode.Forbidden, (await user.PutAsJsonAsync("/api/v1/admin/tools/write_marker", new { preApproved = true })).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.PutAsJsonAsync("/api/v1/admin/tools/no_such_tool", new { preApproved = true })).StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await admin.PutAsJsonAsync("/api/v1/admin/tools/echo", new { preApproved = true })).StatusCode);

        // A separate app: pre-approval is global and would change the other tests' runs.
        await using var app = Sutazai.Server.Tests.Infrastructure.TestApp.Create(DbProvider.Sqlite, AgentAppFixture.Settings, services: fixture.Register);
        var (_, adminTokens) = await Accounts.RegisterAndLoginAsync(app.Client());
        var client = app.Client(adminTokens.AccessToken);
        Assert.Equal(HttpStatusCode.OK, (await client.PutAsJsonAsync("/api/v1/admin/tools/write_marker", new { preApproved = true })).StatusCode);
        var tools = await (await client.GetAsync("/api/v1/admin/tools")).ReadJsonAsync();
        Assert.True(tools.EnumerateArray().Single(t => t.GetProperty("name").GetString() == "write_marker").GetProperty("preApproved").GetBoolean());

        var agent = await Runs.CreateAgentAsync(client, "trusted", ["testkit"]);
        var key = Key();
        fixture.Models.Script(key, ScriptedModels.Call("write_marker", new { name = "auto.txt" }), ScriptedModels.Answer("ok"));
        var runId = await Runs.StartAsync(client, agent, key);
        var done = await Runs.WaitForAsync(client, runId, "succeeded", "failed", "waiting_approval");
        Assert.Equal("succeeded", done.GetProperty("status").GetString());
        Assert.Equal(["model", "tool_call", "tool_result", "model"], Runs.StepKinds(done));
    }

    [Fact]
    public async Task Cancel_StopsARunningTool_WithinAStep()
    {
        var client = await fixture.UserAsync();
        var agent = await Runs.CreateAgentAsync(client, "slow", ["testkit"]);
        var key = Key();
        fixture.Models.Script(key, ScriptedModels.Call("wait", new { seconds = 120 }), ScriptedModels.Answer("never"));
        var runId = await Runs.StartAsync(client, agent, key);
        await WaitForStepAsync(client, runId, "tool_call");
        var started = DateTime.UtcNow;
        var cancel = await client.PostAsync($"/api/v1/runs/{runId}/cancel", null);
        Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
        var done = await Runs.WaitForAsync(client, runId, "cancelled");
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(10));
        Assert.Equal("Cancelled by the user.", done.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.Conflict, (await client.PostAsync($"/api/v1/runs/{runId}/cancel", null)).StatusCode);
    }

    [Fact]
    public async Task Timeout_FailsTheRun_AndStopsTheTool()
    {
        var client = await fixture.UserAsync();
        var agent = await Runs.CreateAgentAsync(client, "timed", ["testkit"], timeoutSeconds: 2);
        var key = Key();
        fixture.Models.Script(key, ScriptedModels.Call("wait", new { seconds = 120 }), ScriptedModels.Answer("never"));
        var runId = await Runs.StartAsync(client, agent, key);
        var done = await Runs.WaitForAsync(client, runId, "failed", "succeeded", "cancelled");
        Assert.Equal("failed", done.GetProperty("status").GetString());
        Assert.Equal("The run exceeded its time limit of 2 s; running tools were stopped.", done.GetProperty("error").GetString());
        Assert.Equal("error", Runs.StepKinds(done).Last());
    }

    [Fact]
    public async Task StepLimit_FailsTheRun_WithAClearError()
    {
        var client = await fixture.UserAsync();
        var agent = await Runs.CreateAgentAsync(client, "looping", ["testkit"], maxSteps: 2);
        var key = Key();
        fixture.Models.Script(key, ScriptedModels.Call("echo", new { text = "1" }), ScriptedModels.Call("echo", new { text = "2" }), ScriptedModels.Call("echo", new { text = "3" }));
        var runId = await Runs.StartAsync(client, agent, key);
        var done = await Runs.WaitForAsync(client, runId, "failed", "succeeded");
        Assert.Equal("The run reached its limit of 2 model steps without a final answer.", done.GetProperty("error").GetString());
        Assert.Equal(["model", "tool_call", "tool_result", "model", "tool_call", "tool_result", "error"], Runs.StepKinds(done));
    }

    [Fact]
    public async Task UnknownTool_IsReportedToTheModel_WhichCanRecover()
    {
        var client = await fixture.UserAsync();
        var agent = await Runs.CreateAgentAsync(client, "confused", ["testkit"]);
        var key = Key();
        fixture.Models.Script(key, ScriptedModels.Call("rm_everything", new { }), ScriptedModels.Answer("Sorry."));
        var runId = await Runs.StartAsync(client, agent, key);
        var done = await Runs.WaitForAsync(client, runId, "succeeded", "failed");
        Assert.Equal("succeeded", done.GetProperty("status").GetString());
        var result = done.GetProperty("steps")[1].GetProperty("data");
        Assert.StartsWith("There is no tool 'rm_everything'.", result.GetProperty("error").GetString());
    }

    [Fact]
    public async Task OtherUsersRuns_AreNotFound_ForEveryRoute()
    {
        var owner = await fixture.UserAsync();
        var stranger = await fixture.UserAsync();
        var agent = await Runs.CreateAgentAsync(owner, "private", ["testkit"]);
        var key = Key();
        fixture.Models.Script(key, ScriptedModels.Call("write_marker", new { name = "m" }), ScriptedModels.Answer("ok"));
        var runId = await Runs.StartAsync(owner, agent, key);
        var waiting = await Runs.WaitForAsync(owner, runId, "waiting_approval");
        var approvalId = waiting.GetProperty("pendingApprovals")[0].GetProperty("id").GetGuid();

        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/api/v1/runs/{runId}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/api/v1/runs/{runId}/events")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/api/v1/runs/{runId}/artifacts/workspace.zip")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.PostAsync($"/api/v1/runs/{runId}/cancel", null)).StatusCode);
        var steal = await stranger.PostAsJsonAsync($"/api/v1/runs/{runId}/approvals/{approvalId}", new { approve = true });
        Assert.Equal(HttpStatusCode.NotFound, steal.StatusCode);
        Assert.DoesNotContain(key, await steal.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.PostAsJsonAsync($"/api/v1/agents/{agent}/runs", new { input = "x" })).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.DeleteAsync($"/api/v1/agents/{agent}")).StatusCode);
        var list = await (await stranger.GetAsync("/api/v1/runs")).ReadJsonAsync();
        Assert.Equal(0, list.GetArrayLength());

        var still = await Runs.GetAsync(owner, runId);
        Assert.Equal("waiting_approval", still.GetProperty("status").GetString());
        Assert.Equal("pending", await fixture.App.WithDbAsync(db => db.AgentApprovals.Where(a => a.Id == approvalId).Select(a => a.Status).SingleAsync()));
    }

    [Fact]
    public async Task BadRequests_GetClearErrors()
    {
        var client = await fixture.UserAsync();
        var empty = await client.PostAsJsonAsync("/api/v1/agents/shell/runs", new { input = "  " });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, empty.StatusCode);
        Assert.Equal("Input is required.", (await empty.ReadJsonAsync()).GetProperty("errors").GetProperty("input")[0].GetString());
        Assert.Equal(HttpStatusCode.NotFound, (await client.PostAsJsonAsync("/api/v1/agents/nope/runs", new { input = "x" })).StatusCode);
        var crew = await client.PostAsJsonAsync("/api/v1/agents/crew/runs", new { input = "x" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, crew.StatusCode);
        Assert.True((await crew.ReadJsonAsync()).GetProperty("errors").TryGetProperty("options.crew", out _));
        var repo = await client.PostAsJsonAsync("/api/v1/agents/coder/runs", new { input = "x", options = new { repository = "/etc" } });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, repo.StatusCode);
        Assert.True((await repo.ReadJsonAsync()).GetProperty("errors").TryGetProperty("options.repository", out _));
        var malformed = await client.PostAsync("/api/v1/agents/shell/runs", new StringContent("{\"input\": ", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
        var badAgent = await client.PostAsJsonAsync("/api/v1/agents", new { name = "", instructions = "", tools = new[] { "nope" }, maxSteps = 0 });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, badAgent.StatusCode);
        var errors = (await badAgent.ReadJsonAsync()).GetProperty("errors");
        Assert.True(errors.TryGetProperty("name", out _));
        Assert.True(errors.TryGetProperty("instructions", out _));
        Assert.True(errors.TryGetProperty("tools", out _));
        Assert.True(errors.TryGetProperty("maxSteps", out _));
        var missingDecision = await client.PostAsJsonAsync($"/api/v1/runs/{Guid.NewGuid()}/approvals/{Guid.NewGuid()}", new { });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, missingDecision.StatusCode);
    }

    [Fact]
    public async Task Catalogue_ListsBuiltInAgentsWithHealth_AndMyCustomAgents()
    {
        var client = await fixture.UserAsync();
        await Runs.CreateAgentAsync(client, "mine", ["testkit"]);
        var agents = await (await client.GetAsync("/api/v1/agents")).ReadJsonAsync();
        var ids = agents.EnumerateArray().Select(a => a.GetProperty("id").GetString()).ToList();
        Assert.Equal(["shell", "engineer", "coder", "crew", "memory", "analyst"], ids.Take(6));
        var mine = agents.EnumerateArray().Single(a => a.GetProperty("name").GetString() == "mine");
        Assert.False(mine.GetProperty("builtIn").GetBoolean());
        Assert.True(mine.GetProperty("health").GetProperty("healthy").GetBoolean());
        Assert.Equal(ScriptedModels.ModelId, mine.GetProperty("health").GetProperty("model").GetString());
        var memory = agents.EnumerateArray().Single(a => a.GetProperty("id").GetString() == "memory");
        Assert.True(memory.GetProperty("health").GetProperty("toolsAvailable").GetBoolean());
        Assert.Equal("Letta", memory.GetProperty("originalName").GetString());

        var duplicate = await client.PostAsJsonAsync("/api/v1/agents", new { name = "mine", instructions = "x" });
        Assert.Equal(HttpStatusCode.Conflict, duplicate.StatusCode);
    }

    [Fact]
    public async Task Events_StreamStoredStepsThenTheApprovalRequest()
    {
        var client = await fixture.UserAsync();
        var agent = await Runs.CreateAgentAsync(client, "streamed", ["testkit"]);
        var key = Key();
        fixture.Models.Script(key, ScriptedModels.Call("write_marker", new { name = "s" }, "Writing."), ScriptedModels.Answer("finished"));
        var runId = await Runs.StartAsync(client, agent, key);

        using var response = await client.SendAsync(Sse.Get($"/api/v1/runs/{runId}/events"), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = new List<SseEvent>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await foreach (var e in Sse.ReadAsync(response, cts.Token)) events.Add(e);
        var approval = events.Last();
        Assert.Equal("approval_required", approval.Event);
        Assert.Equal("write_marker", approval.Data.GetProperty("tool").GetString());
        Assert.Equal(["model", "approval_request"], events.Where(e => e.Event == "step").Select(e => e.Data.GetProperty("kind").GetString()));

        await client.PostAsJsonAsync($"/api/v1/runs/{runId}/approvals/{approval.Data.GetProperty("id").GetGuid()}", new { approve = true });
        using var second = await client.SendAsync(Sse.Get($"/api/v1/runs/{runId}/events"), HttpCompletionOption.ResponseHeadersRead);
        var rest = new List<SseEvent>();
        await foreach (var e in Sse.ReadAsync(second, cts.Token)) rest.Add(e);
        Assert.Equal("complete", rest.Last().Event);
        Assert.Equal("finished", rest.Last().Data.GetProperty("output").GetString());
        Assert.Equal(6, rest.Count(e => e.Event == "step"));
    }

    [Fact]
    public async Task WorkspaceZip_HoldsTheFilesTheRunWrote()
    {
        var client = await fixture.UserAsync();
        var agent = await Runs.CreateAgentAsync(client, "zipper", ["testkit"]);
        var key = Key();
        fixture.Models.Script(key, ScriptedModels.Call("write_marker", new { name = "a.txt" }), ScriptedModels.Answer("ok"));
        var runId = await Runs.StartAsync(client, agent, key);
        var waiting = await Runs.WaitForAsync(client, runId, "waiting_approval");
        await client.PostAsJsonAsync($"/api/v1/runs/{runId}/approvals/{waiting.GetProperty("pendingApprovals")[0].GetProperty("id").GetGuid()}", new { approve = true });
        await Runs.WaitForAsync(client, runId, "succeeded");
        File.CreateSymbolicLink(Path.Combine(Workspace(runId), "escape"), "/etc/hostname");

        var zip = await client.GetAsync($"/api/v1/runs/{runId}/artifacts/workspace.zip");
        Assert.Equal(HttpStatusCode.OK, zip.StatusCode);
        Assert.Equal("application/zip", zip.Content.Headers.ContentType!.MediaType);
        using var archive = new System.IO.Compression.ZipArchive(await zip.Content.ReadAsStreamAsync());
        var entry = Assert.Single(archive.Entries);
        Assert.Equal("a.txt", entry.FullName);
        using var reader = new StreamReader(entry.Open());
        Assert.Equal("written\n", await reader.ReadToEndAsync());
    }

    [Fact]
    public async Task CrewSequential_EachMemberWorksOnItsTask_WithThePreviousResults()
    {
        var client = await fixture.UserAsync();
        var key = Key();
        fixture.Models.Script(key + " research", ScriptedModels.Answer("facts: water boils at 100 C"));
        fixture.Models.Script(key + " write",
            Reply(messages => ScriptedModels.Answer(messages[1].Text.Contains("facts: water boils at 100 C", StringComparison.Ordinal) ? "article using the facts" : "article without facts")));
        var runId = await Runs.StartAsync(client, "crew", key, new
        {
            crew = new
            {
                process = "sequential",
                members = new[] { new { role = "researcher", goal = "find facts", tools = new[] { "testkit" } }, new { role = "writer", goal = "write", tools = Array.Empty<string>() } },
                tasks = new[] { new { description = key + " research", member = "researcher" }, new { description = key + " write", member = "writer" } },
            },
        });
        var done = await Runs.WaitForAsync(client, runId, "succeeded", "failed");
        Assert.Equal("succeeded", done.GetProperty("status").GetString());
        Assert.Equal("article using the facts", done.GetProperty("output").GetString());
        Assert.Equal(["researcher", "writer"], done.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("member").GetString()));
    }

    [Fact]
    public async Task CrewHierarchical_ManagerDelegates_AndMemberStepsAreVisible()
    {
        var client = await fixture.UserAsync();
        var key = Key();
        fixture.Models.Script(key + " manager",
            ScriptedModels.Call("delegate_task", new { member = "Checker", task = key + " check the numbers" }),
            Reply(messages => ScriptedModels.Answer("manager summary: " + messages.Last().Contents.OfType<Microsoft.Extensions.AI.FunctionResultContent>().Single().Result)));
        fixture.Models.Script(key + " check the numbers", ScriptedModels.Call("echo", new { text = "42" }), ScriptedModels.Answer("numbers are fine"));
        var runId = await Runs.StartAsync(client, "crew", key + " manager", new
        {
            crew = new
            {
                process = "hierarchical",
                members = new[] { new { role = "checker", goal = "check numbers", tools = new[] { "testkit" } } },
                tasks = new[] { new { description = "verify", member = (string?)null } },
            },
        });
        var done = await Runs.WaitForAsync(client, runId, "succeeded", "failed");
        Assert.Equal("succeeded", done.GetProperty("status").GetString());
        Assert.Equal("manager summary: {\"member\":\"checker\",\"output\":\"numbers are fine\"}", done.GetProperty("output").GetString());
        var steps = done.GetProperty("steps").EnumerateArray().Select(s => (s.GetProperty("kind").GetString(), s.GetProperty("member").GetString())).ToList();
        Assert.Equal([("model", "manager"), ("delegation", "manager"), ("model", "checker"), ("tool_call", "checker"), ("tool_result", "checker"), ("model", "checker"), ("tool_result", "manager"), ("model", "manager")], steps);
    }

    private static async Task WaitForStepAsync(HttpClient client, Guid runId, string kind)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!Runs.StepKinds(await Runs.GetAsync(client, runId)).Contains(kind))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"No '{kind}' step in run {runId}.");
            await Task.Delay(50);
        }
    }
}

/// <summary>A run interrupted by a crash is resumed from its stored steps after a restart, never stuck and never repeating a side effect.</summary>
public sealed class AgentRecoveryTests
{
    [Fact]
    public async Task AfterRestart_InterruptedRun_ResumesWithoutRepeatingTheSideEffect()
    {
        var models = new ScriptedModels();
        var tools = new TestKitTools();
        var dataDir = Directory.CreateTempSubdirectory("sutazai-agent-crash-").FullName;
        Guid runId, userId;
        var key = "crash-" + Guid.NewGuid().ToString("N")[..8];
        models.Script(key,
            ScriptedModels.Call("write_marker", new { name = "once.txt" }, callId: "call_crash"),
            ScriptedModels.Answer("recovered"));
        void Register(Microsoft.Extensions.DependencyInjection.IServiceCollection s)
        {
            Microsoft.Extensions.DependencyInjection.ServiceCollectionServiceExtensions.AddSingleton<Sutazai.Inference.IModelProvider>(s, models);
            Microsoft.Extensions.DependencyInjection.ServiceCollectionServiceExtensions.AddSingleton<Sutazai.Agents.Tools.IToolProvider>(s, tools);
        }

        await using (var first = TestApp.Create(DbProvider.Sqlite, AgentAppFixture.Settings, dataDir, Register))
        {
            var (user, tokens) = await Accounts.RegisterAndLoginAsync(first.Client());
            userId = user.Id;
            var client = first.Client(tokens.AccessToken);
            var agent = await Runs.CreateAgentAsync(client, "crashy", ["testkit"]);
            runId = await Runs.StartAsync(client, agent, key);
            var waiting = await Runs.WaitForAsync(client, runId, "waiting_approval");
            await client.PostAsJsonAsync($"/api/v1/runs/{runId}/approvals/{waiting.GetProperty("pendingApprovals")[0].GetProperty("id").GetGuid()}", new { approve = true });
            await Runs.WaitForAsync(client, runId, "succeeded");
            // Rewind the stored run to the moment the tool had started and the worker died: the tool_call step is
            // stored, its result and the final model turn are not, and the dead worker's lease has expired.
            await first.WithDbAsync(async db =>
            {
                await db.AgentRunSteps.Where(s => s.RunId == runId && s.Index >= 4).ExecuteDeleteAsync();
                await db.AgentRuns.Where(r => r.Id == runId).ExecuteUpdateAsync(s => s
                    .SetProperty(r => r.Status, AgentRunStatus.Running).SetProperty(r => r.Output, (string?)null).SetProperty(r => r.FinishedAt, (DateTime?)null)
                    .SetProperty(r => r.LeaseOwner, "dead-worker").SetProperty(r => r.LeaseUntil, DateTime.UtcNow.AddMinutes(-1)));
                return 0;
            });
        }
        Assert.Equal(["write_marker:once.txt"], tools.Invocations);

        await using var second = TestApp.Create(DbProvider.Sqlite, AgentAppFixture.Settings, dataDir, Register);
        var tokens2 = await Accounts.LoginAsync(second.Client(), await second.WithDbAsync(db => db.Users.Where(u => u.Id == userId).Select(u => u.UserName!).SingleAsync()));
        var resumed = await Runs.WaitForAsync(second.Client(tokens2.AccessToken), runId, "succeeded", "failed");
        Assert.Equal("succeeded", resumed.GetProperty("status").GetString());
        Assert.Equal("recovered", resumed.GetProperty("output").GetString());
        Assert.Equal(["model", "approval_request", "approval", "tool_call", "tool_result", "model"], Runs.StepKinds(resumed));
        Assert.StartsWith("The tool was running when the run was interrupted", resumed.GetProperty("steps")[4].GetProperty("data").GetProperty("error").GetString());
        Assert.Equal(["write_marker:once.txt"], tools.Invocations);
        Directory.Delete(dataDir, recursive: true);
    }
}

using Sutazai.Agents;
using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.AI;
using Sutazai.Server.Agents;
using Sutazai.Server.Tests.Chat;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Agents;

public sealed class JarvisSocketTests(AgentAppFixture fixture) : IClassFixture<AgentAppFixture>
{
    private static string Type(JsonElement frame) => frame.GetProperty("type").GetString()!;

    private async Task<(ChatClient Socket, Tokens Tokens)> ConnectAsync(Tokens? tokens = null)
    {
        tokens ??= (await Accounts.RegisterAndLoginAsync(fixture.App.Client())).Tokens;
        var socket = await ChatClient.ConnectAsync(fixture.App, tokens.AccessToken, "/ws/jarvis");
        var hello = await socket.ReadConnectionAsync();
        Assert.Equal("connection", Type(hello));
        Assert.True(hello.GetProperty("authenticated").GetBoolean());
        return (socket, tokens);
    }

    [Fact]
    public async Task ListLargestFiles_ProposesACommand_EveryOpenSocketSeesTheApproval_ApprovedItRuns()
    {
        var task = "find the three biggest files " + Guid.NewGuid().ToString("N")[..6];
        var command = "printf 1 > small.txt; printf 1234567890 > big.txt; printf 12345 > mid.txt; ls -S | head -3";
        fixture.Models.Script("list the 3 largest files in my workspace", ScriptedModels.Call("start_agent", new { agent = "shell", task }));
        fixture.Models.Script(task,
            ScriptedModels.Call("shell_run", new { command }, "This lists the files by size, largest first."),
            (Func<IReadOnlyList<ChatMessage>, ChatResponse>)(messages =>
                ScriptedModels.Answer("Largest files: " + JsonDocument.Parse(messages.Last().Contents.OfType<FunctionResultContent>().Single().Result!.ToString()!).RootElement.GetProperty("stdout").GetString()!.Replace("\n", " ", StringComparison.Ordinal).Trim())));

        var (socket, tokens) = await ConnectAsync();
        await using var _ = socket;
        var (other, _) = await ConnectAsync(tokens);
        await using var __ = other;

        await socket.SendAsync(new { type = "message", text = "list the 3 largest files in my workspace" });
        var frames = await socket.ReceiveUntilAsync("approval_required");
        Assert.Equal("thinking", Type(frames[0]));
        var route = frames.Single(f => Type(f) == "route");
        Assert.Equal("shell", route.GetProperty("agent").GetString());
        Assert.Equal("model", route.GetProperty("method").GetString());
        var runId = frames.Single(f => Type(f) == "run_started").GetProperty("runId").GetGuid();
        var approval = frames.Last();
        Assert.Equal(runId, approval.GetProperty("runId").GetGuid());
        Assert.Equal("shell_run", approval.GetProperty("tool").GetString());
        Assert.Equal(command, approval.GetProperty("arguments").GetProperty("command").GetString());
        Assert.Equal("medium", approval.GetProperty("risk").GetString());
        var proposal = frames.Where(f => Type(f) == "step").Select(f => f.GetProperty("step")).First(s => s.GetProperty("kind").GetString() == "model");
        Assert.Equal("This lists the files by size, largest first.", proposal.GetProperty("data").GetProperty("text").GetString());

        var seenElsewhere = await other.ReceiveUntilAsync("approval_required");
        Assert.Equal(approval.GetProperty("approvalId").GetGuid(), seenElsewhere.Last().GetProperty("approvalId").GetGuid());

        await socket.SendAsync(new { type = "approve", runId, approvalId = approval.GetProperty("approvalId").GetGuid(), approve = true });
        var rest = await socket.ReceiveUntilAsync("complete");
        Assert.Equal("Largest files: big.txt mid.txt small.txt", rest.Last().GetProperty("output").GetString());
        var result = rest.Where(f => Type(f) == "step").Select(f => f.GetProperty("step")).Single(s => s.GetProperty("kind").GetString() == "tool_result");
        Assert.Equal(0, result.GetProperty("data").GetProperty("result").GetProperty("exitCode").GetInt32());

        await socket.SendAsync(new { type = "history", runId });
        var history = await socket.ReceiveUntilAsync("history");
        Assert.Equal("succeeded", history.Last().GetProperty("run").GetProperty("status").GetString());
    }

    [Fact]
    public async Task PlainQuestion_IsAnsweredDirectly_AsAStoredConversationReply()
    {
        var question = "hello jarvis " + Guid.NewGuid().ToString("N")[..6];
        fixture.Models.Script(question, (Func<IReadOnlyList<ChatMessage>, ChatResponse>)(messages =>
            messages.Any(m => m.Role == ChatRole.System && m.Text.Contains("start_agent", StringComparison.Ordinal))
                ? ScriptedModels.Answer("ANSWER")
                : ScriptedModels.Answer("Good evening. How can I help?")));
        var (socket, tokens) = await ConnectAsync();
        await using var _ = socket;
        await socket.SendAsync(new { type = "message", text = question });
        var frames = await socket.ReceiveUntilAsync("complete");
        Assert.True(frames.Single(f => Type(f) == "route").GetProperty("agent").ValueKind == JsonValueKind.Null);
        Assert.Equal("Good evening. How can I help?", string.Concat(frames.Where(f => Type(f) == "token").Select(f => f.GetProperty("content").GetString())));
        var complete = frames.Last();
        Assert.Equal("Good evening. How can I help?", complete.GetProperty("output").GetString());
        var conversationId = complete.GetProperty("conversationId").GetGuid();
        var stored = await (await fixture.App.Client(tokens.AccessToken).GetAsync($"/api/v1/conversations/{conversationId}/messages")).ReadJsonAsync();
        Assert.Equal(["user", "assistant"], stored.EnumerateArray().Select(m => m.GetProperty("role").GetString()));
    }

    [Fact]
    public async Task BadFrames_GetInBandErrors_AndOtherUsersRunsAreNotFound()
    {
        var (socket, _) = await ConnectAsync();
        await using var _s = socket;
        await socket.SendAsync(new { type = "message", text = "  " });
        var error = (await socket.ReceiveUntilAsync("error")).Last();
        Assert.Equal("invalid_request", error.GetProperty("code").GetString());
        await socket.SendAsync(new { type = "dance" });
        Assert.Equal("unknown_type", (await socket.ReceiveUntilAsync("error")).Last().GetProperty("code").GetString());
        await socket.SendAsync(new { type = "approve", runId = Guid.NewGuid(), approvalId = Guid.NewGuid(), approve = true });
        Assert.Equal("not_found", (await socket.ReceiveUntilAsync("error")).Last().GetProperty("code").GetString());
        await socket.SendAsync(new { type = "cancel" });
        Assert.Equal("invalid_request", (await socket.ReceiveUntilAsync("error")).Last().GetProperty("code").GetString());

        var owner = await fixture.UserAsync();
        var agent = await Runs.CreateAgentAsync(owner, "hidden", ["testkit"]);
        var key = "hidden-" + Guid.NewGuid().ToString("N")[..6];
        fixture.Models.Script(key, ScriptedModels.Answer("secret output"));
        var runId = await Runs.StartAsync(owner, agent, key);
        await Runs.WaitForAsync(owner, runId, "succeeded");
        await socket.SendAsync(new { type = "history", runId });
        var notFound = (await socket.ReceiveUntilAsync("error")).Last();
        Assert.Equal("not_found", notFound.GetProperty("code").GetString());
        await socket.SendAsync(new { type = "cancel", runId });
        Assert.Equal("not_found", (await socket.ReceiveUntilAsync("error")).Last().GetProperty("code").GetString());
    }

    [Fact]
    public async Task Handshake_WithTheUsersCookie_FromAnotherOrigin_Is403_FromTheServersOwnOriginItIsAccepted()
    {
        var (user, tokens) = await Accounts.RegisterAndLoginAsync(fixture.App.Client());
        var cookie = await UiCookies.ForAsync(fixture.App, user.Id);

        var hijack = await SocketHandshakes.SendAsync(fixture.App, "/ws/jarvis", "http://evil.example", cookie: cookie);
        Assert.Equal(StatusCodes.Status403Forbidden, hijack.Status);
        Assert.False(hijack.Accepted);
        Assert.Equal("application/problem+json", hijack.ContentType);
        Assert.StartsWith("A page from 'http://evil.example' may not open /ws/jarvis: only pages of this server (http://localhost)",
            JsonDocument.Parse(hijack.Body).RootElement.GetProperty("detail").GetString());
        var withToken = await SocketHandshakes.SendAsync(fixture.App, "/ws/jarvis", "http://evil.example", bearer: tokens.AccessToken);
        Assert.Equal(StatusCodes.Status403Forbidden, withToken.Status);
        Assert.False(withToken.Accepted);
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => ChatClient.ConnectAsync(fixture.App, null, "/ws/jarvis", r =>
        {
            r.Headers.Origin = "http://evil.example";
            r.Headers.Cookie = cookie;
        }));
        Assert.Equal("Incomplete handshake, status code: 403", refused.Message);

        await using var ownPage = await ChatClient.ConnectAsync(fixture.App, null, "/ws/jarvis", r =>
        {
            r.Headers.Origin = "http://localhost";
            r.Headers.Cookie = cookie;
        });
        Assert.True((await ownPage.ReadConnectionAsync()).GetProperty("authenticated").GetBoolean());
        var (cli, _) = await ConnectAsync(tokens); // no Origin, bearer token: accepted (asserted there)
        await cli.DisposeAsync();
    }

    [Fact]
    public async Task DeactivatingTheUser_RefusesTheApprovalTheirOpenSocketSends_AndClosesItWith1008()
    {
        var id = Guid.NewGuid().ToString("N")[..6];
        var request = "please tidy my workspace " + id;
        var task = "remove the scratch files " + id;
        fixture.Models.Script(request, ScriptedModels.Call("start_agent", new { agent = "shell", task }));
        fixture.Models.Script(task, ScriptedModels.Call("shell_run", new { command = "printf approved > proof.txt" }), ScriptedModels.Answer("Done."));
        var (user, tokens) = await Accounts.RegisterAndLoginAsync(fixture.App.Client());
        var (socket, _) = await ConnectAsync(tokens);
        await using var _s = socket;
        await socket.SendAsync(new { type = "message", text = request });
        var approval = (await socket.ReceiveUntilAsync("approval_required")).Last();
        var runId = approval.GetProperty("runId").GetGuid();
        var approvalId = approval.GetProperty("approvalId").GetGuid();

        using var admin = fixture.App.Client(fixture.AdminTokens.AccessToken);
        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/v1/admin/users/{user.Id}", new { isActive = false })).StatusCode);

        await socket.SendAsync(new { type = "approve", runId, approvalId, approve = true });
        var error = (await socket.ReceiveUntilAsync("error")).Last(); // run frames sent before the approval may come first
        Assert.Equal("unauthorized", error.GetProperty("code").GetString());
        Assert.Equal("The account is deactivated.", error.GetProperty("message").GetString());
        Assert.Null(await socket.ReceiveAsync());
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, socket.Socket.CloseStatus);

        Assert.Equal("pending", await fixture.App.WithDbAsync(db => db.AgentApprovals.Where(a => a.Id == approvalId).Select(a => a.Status).SingleAsync()));
        Assert.Equal("waiting_approval", await fixture.App.WithDbAsync(db => db.AgentRuns.Where(r => r.Id == runId).Select(r => r.Status).SingleAsync()));
        Assert.Equal(0, await fixture.App.WithDbAsync(db => db.AgentRunSteps.CountAsync(s => s.RunId == runId && s.Kind == "tool_result")));
    }

    [Theory]
    [InlineData("list the 3 largest files in my workspace", "shell")]
    [InlineData("Run df -h please", "shell")]
    [InlineData("Create a new Python project that prints primes", "engineer")]
    [InlineData("build me a todo app", "engineer")]
    [InlineData("Remember that I prefer tea", "memory")]
    [InlineData("Summarise the quarterly report", "analyst")]
    [InlineData("what is the capital of France?", null)]
    public void KeywordFallback_RoutesDeterministically(string text, string? agent) =>
        Assert.Equal(agent, JarvisRouter.ByKeywords(text).Agent);
}

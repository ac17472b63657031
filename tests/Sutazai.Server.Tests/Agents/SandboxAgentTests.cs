using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Agents;

/// <summary>
/// The report that opened issue 12, replayed: a self-registered user's approved shell command, run by the real server
/// in the real sandbox, sees none of the server's keys, database or other runs — and its own files reach the zip.
/// </summary>
public sealed class SandboxAgentTests : IAsyncLifetime
{
    private readonly AgentAppFixture _kit = new();

    public Task InitializeAsync() => _kit.InitializeAsync();

    public Task DisposeAsync() => _kit.DisposeAsync();

    private static async Task<JsonElement> ApproveAllAsync(HttpClient client, Guid runId)
    {
        while (true)
        {
            var run = await Runs.WaitForAsync(client, runId, "waiting_approval", "succeeded", "failed", "cancelled");
            if (run.GetProperty("status").GetString() != "waiting_approval") return run;
            var pending = run.GetProperty("pendingApprovals")[0];
            var decide = await client.PostAsJsonAsync($"/api/v1/runs/{runId}/approvals/{pending.GetProperty("id").GetGuid()}", new { approve = true });
            Assert.Equal(HttpStatusCode.OK, decide.StatusCode);
        }
    }

    private static JsonElement ShellResult(JsonElement run) =>
        run.GetProperty("steps").EnumerateArray().Single(s => s.GetProperty("kind").GetString() == "tool_result").GetProperty("data");

    [Fact]
    public async Task NormalUsersApprovedCommand_CannotSeeTheServersKeysDatabaseOrOtherRuns_ButWritesItsWorkspace()
    {
        var admin = _kit.App.Client(_kit.AdminTokens.AccessToken);
        var adminTask = "admin-run-" + Guid.NewGuid().ToString("N")[..8];
        _kit.Models.Script(adminTask, ScriptedModels.Call("shell_run", new { command = "echo admin-secret > private.txt" }), ScriptedModels.Answer("done"));
        var adminRun = await Runs.StartAsync(admin, "shell", adminTask);
        Assert.Equal("succeeded", (await ApproveAllAsync(admin, adminRun)).GetProperty("status").GetString());

        var dataDir = _kit.App.DataDir;
        // The signing keys are in the database now; a key file an operator or an earlier version left in the data dir
        // (written after the warm-up, so it stays) must be as hidden as the database itself.
        Directory.CreateDirectory(Path.Combine(dataDir, "keys"));
        await File.WriteAllTextAsync(Path.Combine(dataDir, "keys", "jwt-signing.key"), "left-behind-key-material");
        var keys = Directory.GetFiles(Path.Combine(dataDir, "keys"));
        Assert.NotEmpty(keys);
        var probes = keys.Concat([Path.Combine(dataDir, "keys"), Path.Combine(dataDir, "sutazai.db"), Path.Combine(dataDir, "agents", "runs", adminRun.ToString("N"), "private.txt"), dataDir, "/etc/shadow"]).ToList();
        var command = "id -u; " + string.Join("; ", probes.Select(p => $"if [ -e '{p}' ]; then cat '{p}' 2>&1 || echo 'visible {p}'; else echo 'hidden {p}'; fi")) +
            "; echo report > report.txt";

        var user = await _kit.UserAsync();
        var task = "user-run-" + Guid.NewGuid().ToString("N")[..8];
        _kit.Models.Script(task, ScriptedModels.Call("shell_run", new { command }), ScriptedModels.Answer("done"));
        var runId = await Runs.StartAsync(user, "shell", task);
        var run = await ApproveAllAsync(user, runId);
        Assert.Equal("succeeded", run.GetProperty("status").GetString());
        var result = ShellResult(run).GetProperty("result");
        Assert.Equal(0, result.GetProperty("exitCode").GetInt32());
        Assert.Equal("65534\n" + string.Join("", probes.Select(p => $"hidden {p}\n")), result.GetProperty("stdout").GetString());

        var zip = await user.GetAsync($"/api/v1/runs/{runId}/artifacts/workspace.zip");
        Assert.Equal(HttpStatusCode.OK, zip.StatusCode);
        using var archive = new System.IO.Compression.ZipArchive(await zip.Content.ReadAsStreamAsync());
        Assert.Equal(["report.txt"], archive.Entries.Select(e => e.FullName));
    }

    [Fact]
    public async Task Readiness_ReportsTheSandbox()
    {
        var ready = await _kit.App.Client().GetAsync("/health/ready");
        var sandbox = (await ready.ReadJsonAsync()).GetProperty("checks").GetProperty("sandbox");
        Assert.Equal("healthy", sandbox.GetProperty("status").GetString());
        Assert.Equal("bubblewrap, no network", sandbox.GetProperty("description").GetString());
    }
}

/// <summary>A server whose bubblewrap is missing: readiness says so, and the shell run gets the refusal, not a result.</summary>
public sealed class SandboxUnavailableTests : IAsyncLifetime
{
    private readonly ScriptedModels _models = new();
    private TestApp _app = null!;

    public Task InitializeAsync()
    {
        var settings = AgentAppFixture.Settings;
        settings["Sutazai:Agents:Sandbox:BwrapPath"] = "/nonexistent/bwrap";
        _app = TestApp.Create(DbProvider.Sqlite, settings, services: s => s.AddSingleton<Sutazai.Inference.IModelProvider>(_models));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _app.DisposeAsync();

    [Fact]
    public async Task MissingBubblewrap_ShowsInReadiness_AndRefusesTheCommand()
    {
        var ready = await _app.Client().GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        var sandbox = (await ready.ReadJsonAsync()).GetProperty("checks").GetProperty("sandbox");
        Assert.Equal("degraded", sandbox.GetProperty("status").GetString());
        Assert.Equal("unavailable: bubblewrap is not installed at /nonexistent/bwrap (Debian: apt-get install bubblewrap); agent commands are refused.",
            sandbox.GetProperty("description").GetString());

        var (_, tokens) = await Accounts.RegisterAndLoginAsync(_app.Client());
        var client = _app.Client(tokens.AccessToken);
        var task = "refused-" + Guid.NewGuid().ToString("N")[..8];
        _models.Script(task, ScriptedModels.Call("shell_run", new { command = "echo ran > ran.txt" }), ScriptedModels.Answer("done"));
        var runId = await Runs.StartAsync(client, "shell", task);
        var run = await Runs.WaitForAsync(client, runId, "waiting_approval", "succeeded", "failed");
        if (run.GetProperty("status").GetString() == "waiting_approval")
        {
            var pending = run.GetProperty("pendingApprovals")[0];
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync($"/api/v1/runs/{runId}/approvals/{pending.GetProperty("id").GetGuid()}", new { approve = true })).StatusCode);
            run = await Runs.WaitForAsync(client, runId, "succeeded", "failed");
        }
        var step = run.GetProperty("steps").EnumerateArray().Single(s => s.GetProperty("kind").GetString() == "tool_result").GetProperty("data");
        Assert.Equal("Commands are refused: the sandbox is unavailable (bubblewrap is not installed at /nonexistent/bwrap (Debian: apt-get install bubblewrap)). " +
            "An administrator must install bubblewrap; commands never run unsandboxed.", step.GetProperty("error").GetString());
        Assert.False(File.Exists(Path.Combine(_app.DataDir, "agents", "runs", runId.ToString("N"), "ran.txt")));
    }
}

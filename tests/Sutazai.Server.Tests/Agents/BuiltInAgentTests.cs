using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.AI;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Agents;

/// <summary>
/// The engineer and coder agents with their real tools (files, shell, git) driven by a scripted model: every side
/// effect waits for approval, and the results are on disk, in the zip and in the repository's history.
/// </summary>
public sealed class BuiltInAgentTests : IAsyncLifetime
{
    private readonly AgentAppFixture _kit = new();
    private TestApp _app = null!;
    private HttpClient _client = null!;
    private string _repository = null!;

    private static async Task<string> GitAsync(string repository, params string[] args)
    {
        var start = new ProcessStartInfo("git") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-C", repository, "-c", "user.name=Test", "-c", "user.email=test@example.test" }.Concat(args)) start.ArgumentList.Add(a);
        using var git = Process.Start(start)!;
        var output = await git.StandardOutput.ReadToEndAsync();
        await git.WaitForExitAsync();
        Assert.True(git.ExitCode == 0, $"git {string.Join(' ', args)}: {await git.StandardError.ReadToEndAsync()}");
        return output;
    }

    public async Task InitializeAsync()
    {
        _repository = Directory.CreateTempSubdirectory("sutazai-coder-").FullName;
        await GitAsync(_repository, "init", "-q");
        await File.WriteAllTextAsync(Path.Combine(_repository, "app.py"), "def main():\n    print('hi')\n\nmain()\n");
        await GitAsync(_repository, "add", "-A");
        await GitAsync(_repository, "commit", "-q", "-m", "Initial");
        var settings = AgentAppFixture.Settings;
        settings["Sutazai:Agents:CoderRepositories"] = _repository;
        _app = TestApp.Create(DbProvider.Sqlite, settings, services: _kit.Register);
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(_app.Client());
        _client = _app.Client(tokens.AccessToken);
    }

    public async Task DisposeAsync()
    {
        await _app.DisposeAsync();
        Directory.Delete(_repository, recursive: true);
    }

    /// <summary>Approves every tool call the run asks for until it ends; returns the finished run and the tools approved.</summary>
    private async Task<(JsonElement Run, List<string> Approved)> ApproveUntilDoneAsync(Guid runId)
    {
        var approved = new List<string>();
        while (true)
        {
            var run = await Runs.WaitForAsync(_client, runId, "waiting_approval", "succeeded", "failed", "cancelled");
            if (run.GetProperty("status").GetString() != "waiting_approval") return (run, approved);
            var pending = run.GetProperty("pendingApprovals")[0];
            approved.Add(pending.GetProperty("tool").GetString()!);
            var decide = await _client.PostAsJsonAsync($"/api/v1/runs/{runId}/approvals/{pending.GetProperty("id").GetGuid()}", new { approve = true });
            Assert.Equal(HttpStatusCode.OK, decide.StatusCode);
        }
    }

    private static JsonElement ResultOf(JsonElement run, string tool) =>
        run.GetProperty("steps").EnumerateArray().Single(s => s.GetProperty("kind").GetString() == "tool_result" && s.GetProperty("data").GetProperty("tool").GetString() == tool)
            .GetProperty("data");

    [Fact]
    public async Task Engineer_WritesAProject_RunsIt_AndTheWorkspaceDownloadsAsZip()
    {
        var spec = "engineer-spec-" + Guid.NewGuid().ToString("N")[..8] + ": a script that prints the first primes";
        _kit.Models.Script(spec,
            ScriptedModels.Call("files_write", new { path = "README.md", content = "# Primes\n\nRun `python3 primes.py`.\n" }, "Plan: README.md, primes.py."),
            ScriptedModels.Call("files_write", new { path = "primes.py", content = "print([n for n in range(2, 12) if all(n % d for d in range(2, n))])\n" }),
            ScriptedModels.Call("shell_run", new { command = "python3 primes.py" }),
            ScriptedModels.Answer("The project prints [2, 3, 5, 7, 11]."));
        var runId = await Runs.StartAsync(_client, "engineer", spec);
        var (run, approved) = await ApproveUntilDoneAsync(runId);
        Assert.Equal("succeeded", run.GetProperty("status").GetString());
        Assert.Equal(["files_write", "files_write", "shell_run"], approved);
        var shell = ResultOf(run, "shell_run").GetProperty("result");
        Assert.Equal(0, shell.GetProperty("exitCode").GetInt32());
        Assert.Equal("[2, 3, 5, 7, 11]\n", shell.GetProperty("stdout").GetString());
        Assert.Equal(["README.md", "primes.py"], run.GetProperty("artifacts").EnumerateArray().Select(a => a.GetProperty("path").GetString()));

        var zip = await _client.GetAsync($"/api/v1/runs/{runId}/artifacts/workspace.zip");
        Assert.Equal(HttpStatusCode.OK, zip.StatusCode);
        using var archive = new System.IO.Compression.ZipArchive(await zip.Content.ReadAsStreamAsync());
        Assert.Equal(["README.md", "primes.py"], archive.Entries.Select(e => e.FullName).Order(StringComparer.Ordinal));
        using var reader = new StreamReader(archive.GetEntry("primes.py")!.Open());
        Assert.Equal("print([n for n in range(2, 12) if all(n % d for d in range(2, n))])\n", await reader.ReadToEndAsync());
    }

    private static JsonElement[] BuildAttempts(JsonElement run) =>
        run.GetProperty("steps").EnumerateArray().Where(s => s.GetProperty("kind").GetString() == "build_attempt").Select(s => s.GetProperty("data")).ToArray();

    [Fact]
    public async Task Engineer_RunsTheBuildItsPlanNames_FeedsTheErrorBack_AndBuildsAgainAfterTheFix()
    {
        var spec = "engineer-build-" + Guid.NewGuid().ToString("N")[..8] + ": a greeting checked by build.sh";
        const string feedback = "The build command `sh build.sh` failed with exit code 1 (attempt 1 of 3). Its output:\nerror: greeting.txt is missing\n\n" +
            "Fix the files, then finish again: the command runs again after your answer.";
        _kit.Models.Script(spec,
            ScriptedModels.Call("files_write", new { path = "build.sh", content = "test -f greeting.txt || { echo 'error: greeting.txt is missing' >&2; exit 1; }\ncat greeting.txt\n" },
                "Plan: build.sh checks that greeting.txt exists.\nBuild: `sh build.sh`"),
            ScriptedModels.Answer("Wrote build.sh."),
            (Func<IReadOnlyList<ChatMessage>, ChatResponse>)(messages => messages[^1].Role == ChatRole.User && messages[^1].Text == feedback
                ? ScriptedModels.Call("files_write", new { path = "greeting.txt", content = "hello\n" })
                : ScriptedModels.Answer("The build error was not fed back.")),
            ScriptedModels.Answer("Fixed: greeting.txt added."));
        var runId = await Runs.StartAsync(_client, "engineer", spec);
        var (run, approved) = await ApproveUntilDoneAsync(runId);

        Assert.Equal("succeeded", run.GetProperty("status").GetString());
        Assert.Equal("Fixed: greeting.txt added.", run.GetProperty("output").GetString());
        Assert.Equal(["files_write", "shell_run", "files_write", "shell_run"], approved);
        Assert.Equal(
        [
            "model", "approval_request", "approval", "tool_call", "tool_result", "model",
            "approval_request", "approval", "tool_call", "tool_result", "build_attempt",
            "model", "approval_request", "approval", "tool_call", "tool_result", "model",
            "approval_request", "approval", "tool_call", "tool_result", "build_attempt",
        ], Runs.StepKinds(run));
        var attempts = BuildAttempts(run);
        Assert.Equal([(1, 1, false, "sh build.sh", "error: greeting.txt is missing"), (2, 0, true, "sh build.sh", "hello")],
            attempts.Select(a => (a.GetProperty("attempt").GetInt32(), a.GetProperty("exitCode").GetInt32(), a.GetProperty("passed").GetBoolean(),
                a.GetProperty("command").GetString()!, a.GetProperty("output").GetString()!)));
        Assert.Equal(feedback, attempts[0].GetProperty("feedback").GetString());
        Assert.Equal(JsonValueKind.Null, attempts[1].GetProperty("feedback").ValueKind);

        // Each attempt is a real shell_run call, stored in the build segment (not in the model's conversation).
        var buildCalls = run.GetProperty("steps").EnumerateArray()
            .Where(s => s.GetProperty("kind").GetString() == "tool_call" && s.GetProperty("data").TryGetProperty("segment", out var segment) && segment.GetString() == "build")
            .Select(s => s.GetProperty("data")).ToList();
        Assert.Equal([("build_1", "sh build.sh"), ("build_2", "sh build.sh")], buildCalls.Select(d => (d.GetProperty("callId").GetString()!, d.GetProperty("arguments").GetProperty("command").GetString()!)));
        var results = run.GetProperty("steps").EnumerateArray().Where(s => s.GetProperty("kind").GetString() == "tool_result" && s.GetProperty("data").GetProperty("tool").GetString() == "shell_run")
            .Select(s => s.GetProperty("data").GetProperty("result")).ToList();
        Assert.Equal([(1, "error: greeting.txt is missing\n"), (0, "")], results.Select(r => (r.GetProperty("exitCode").GetInt32(), r.GetProperty("stderr").GetString()!)));

        // The model was sent the error as a user message, and its conversation has no call it did not make.
        var fed = Assert.Single(_kit.Models.Requests, r => r[0].Role == ChatRole.System && r[1].Text == spec && r[^1].Role == ChatRole.User && r[^1].Text == feedback);
        Assert.DoesNotContain(fed.SelectMany(m => m.Contents).OfType<FunctionResultContent>(), c => c.CallId.StartsWith("build_", StringComparison.Ordinal));
        Assert.Equal("hello\n", await File.ReadAllTextAsync(Path.Combine(_app.DataDir, "agents", "runs", runId.ToString("N"), "greeting.txt")));
    }

    [Fact]
    public async Task Engineer_BuildStillFailingAfterTheLastAttempt_FailsTheRun()
    {
        var spec = "engineer-broken-" + Guid.NewGuid().ToString("N")[..8] + ": a build that never passes";
        _kit.Models.Script(spec,
            ScriptedModels.Call("files_write", new { path = "fail.sh", content = "echo broken >&2\nexit 2\n" }, "Build: sh fail.sh"),
            ScriptedModels.Answer("Wrote fail.sh."),
            ScriptedModels.Answer("Tried again."),
            ScriptedModels.Answer("Tried once more."));
        var runId = await Runs.StartAsync(_client, "engineer", spec);
        var (run, approved) = await ApproveUntilDoneAsync(runId);
        Assert.Equal("failed", run.GetProperty("status").GetString());
        Assert.Equal("The build command `sh fail.sh` still failed after 3 attempts (exit code 2); the files are in the workspace.", run.GetProperty("error").GetString());
        Assert.Equal(["files_write", "shell_run", "shell_run", "shell_run"], approved);
        var attempts = BuildAttempts(run);
        Assert.Equal([(1, 2, true), (2, 2, true), (3, 2, false)],
            attempts.Select(a => (a.GetProperty("attempt").GetInt32(), a.GetProperty("exitCode").GetInt32(), a.GetProperty("feedback").ValueKind == JsonValueKind.String)));
        Assert.Equal("error", Runs.StepKinds(run)[^1]);
    }

    [Fact]
    public async Task Coder_EditsTheAllowedRepository_ShowsTheDiff_AndCommitsAfterApproval()
    {
        var task = "coder-task-" + Guid.NewGuid().ToString("N")[..8] + ": greet with hello";
        _kit.Models.Script(task,
            ScriptedModels.Call("files_read", new { path = "app.py" }),
            ScriptedModels.Call("files_edit", new { path = "app.py", search = "    print('hi')", replace = "    print('hello')" }),
            ScriptedModels.Call("git_diff", new { }),
            ScriptedModels.Call("git_commit", new { message = "Greet with hello" }),
            ScriptedModels.Answer("Committed: the greeting is now hello."));
        var runId = await Runs.StartAsync(_client, "coder", task, new { repository = _repository });
        var (run, approved) = await ApproveUntilDoneAsync(runId);
        Assert.Equal("succeeded", run.GetProperty("status").GetString());
        Assert.Equal(["files_edit", "git_commit"], approved);
        var patch = ResultOf(run, "git_diff").GetProperty("result").GetProperty("patch").GetString()!;
        Assert.Contains("-    print('hi')", patch, StringComparison.Ordinal);
        Assert.Contains("+    print('hello')", patch, StringComparison.Ordinal);
        Assert.Equal("def main():\n    print('hello')\n\nmain()\n", await File.ReadAllTextAsync(Path.Combine(_repository, "app.py")));
        Assert.Equal("Greet with hello|SutazAI Agent\n", await GitAsync(_repository, "log", "-1", "--format=%s|%an"));
        Assert.Equal("", await GitAsync(_repository, "status", "--porcelain"));
        Assert.Equal(0, run.GetProperty("artifacts").GetArrayLength());
    }

    [Fact]
    public async Task Analyst_SearchesTheUsersDocuments_AndCitesThePassageItFound_NeverAnotherUsers()
    {
        var report = await Documents.UploadIndexedAsync(_client, "q3-report.txt",
            "Quarterly report for the third quarter. Revenue grew twelve percent to 4.2 million euros. Headcount rose to 37.");
        var (_, strangerTokens) = await Accounts.RegisterAndLoginAsync(_app.Client());
        using var stranger = _app.Client(strangerTokens.AccessToken);
        await Documents.UploadIndexedAsync(stranger, "rival-report.txt", "Quarterly report of a rival: revenue fell to 1.1 million euros.");

        var task = "analyst-task-" + Guid.NewGuid().ToString("N")[..8] + ": how much did revenue grow last quarter?";
        _kit.Models.Script(task,
            ScriptedModels.Call("knowledge_search", new { query = "quarterly revenue growth", k = 5 }),
            (Func<IReadOnlyList<ChatMessage>, ChatResponse>)(messages =>
            {
                // The scripted model answers from what the tool really returned: the first passage, cited by title and chunk.
                var result = JsonDocument.Parse(messages.Last().Contents.OfType<FunctionResultContent>().Single().Result!.ToString()!).RootElement;
                var hit = result.GetProperty("results")[0];
                return ScriptedModels.Answer($"Revenue grew twelve percent [{hit.GetProperty("title").GetString()}, {hit.GetProperty("chunkId").GetGuid()}].");
            }));
        var runId = await Runs.StartAsync(_client, "analyst", task);
        var (run, approved) = await ApproveUntilDoneAsync(runId);

        Assert.Equal("succeeded", run.GetProperty("status").GetString());
        Assert.Empty(approved); // searching is read-only: no approval asked
        Assert.Equal(["model", "tool_call", "tool_result", "model"], Runs.StepKinds(run));
        var hits = ResultOf(run, "knowledge_search").GetProperty("result").GetProperty("results").EnumerateArray().ToList();
        Assert.NotEmpty(hits);
        Assert.All(hits, h => Assert.Equal(report, h.GetProperty("documentId").GetGuid())); // the stranger's report is never a hit
        Assert.Contains("4.2 million euros", hits[0].GetProperty("text").GetString(), StringComparison.Ordinal);
        Assert.Equal($"Revenue grew twelve percent [q3-report.txt, {hits[0].GetProperty("chunkId").GetGuid()}].", run.GetProperty("output").GetString());
    }
}

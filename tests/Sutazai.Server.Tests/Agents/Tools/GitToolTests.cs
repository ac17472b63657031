using LibGit2Sharp;
using Sutazai.Agents.Tools;
using static Sutazai.Server.Tests.Agents.Tools.ToolHarness;

namespace Sutazai.Server.Tests.Agents.Tools;

public sealed class GitToolTests : IDisposable
{
    private readonly TempWorkspace _ws = new();
    private readonly IReadOnlyList<AgentTool> _tools;

    public GitToolTests() => _tools = new GitToolProvider(Wrap(Options()), TimeProvider.System).Create(Context(_ws.Root));

    public void Dispose() => _ws.Dispose();

    private AgentTool T(string name) => Assert.Single(_tools, t => t.Name == name);

    [Fact]
    public void Provider_LoadsLibgit2_AndDeclaresSideEffects()
    {
        Assert.Equal((true, (string?)null), new GitToolProvider(Wrap(Options()), TimeProvider.System).Health());
        Assert.Equal(["git_init", "git_status", "git_diff", "git_log", "git_commit"], _tools.Select(t => t.Name));
        Assert.True(T("git_init").SideEffects);
        Assert.True(T("git_commit").SideEffects);
        Assert.False(T("git_status").SideEffects);
        Assert.False(T("git_diff").SideEffects);
        Assert.False(T("git_log").SideEffects);
    }

    [Fact]
    public async Task InitWriteCommitLogDiff_RoundTrip()
    {
        Assert.Equal("The workspace is not a git repository; call git_init first.", (await FailsAsync(T("git_status"))).Message);

        Assert.Equal(new GitInitResult(".", true), await InvokeAsync<GitInitResult>(T("git_init")));
        Assert.True(Directory.Exists(_ws.At(".git")));
        Assert.Equal(new GitInitResult(".", false), await InvokeAsync<GitInitResult>(T("git_init")));
        Assert.Empty((await InvokeAsync<GitLogResult>(T("git_log"))).Commits);

        File.WriteAllText(_ws.At("hello.txt"), "hello\n");
        Directory.CreateDirectory(_ws.At(".tmp"));
        File.WriteAllText(_ws.At(".tmp/scratch"), "shell temp file\n");
        Directory.CreateDirectory(_ws.At("src"));
        File.WriteAllText(_ws.At("src/main.py"), "print(1)\n");
        var status = await InvokeAsync<GitStatusResult>(T("git_status"));
        Assert.False(status.Clean);
        Assert.Equal([new GitStatusEntry("hello.txt", "untracked"), new GitStatusEntry("src/main.py", "untracked")], status.Entries);

        var newFiles = await InvokeAsync<GitDiffResult>(T("git_diff"));
        Assert.Contains("diff --git a/hello.txt b/hello.txt\nnew file mode 100644\n", newFiles.Patch);
        Assert.Contains("--- /dev/null\n+++ b/hello.txt\n@@ -0,0 +1 @@\n+hello\n", newFiles.Patch);
        Assert.Contains("+++ b/src/main.py\n@@ -0,0 +1 @@\n+print(1)\n", newFiles.Patch);
        Assert.Equal((2, 2, 0), (newFiles.FilesChanged, newFiles.Additions, newFiles.Deletions));

        var first = await InvokeAsync<GitCommitResult>(T("git_commit"), new { message = "Add hello" });
        Assert.Equal(("Add hello", 2), (first.Message, first.FilesChanged));
        Assert.True((await InvokeAsync<GitStatusResult>(T("git_status"))).Clean);
        Assert.Equal("Nothing to commit: the workspace has no changes since the last commit.", (await FailsAsync(T("git_commit"), new { message = "again" })).Message);

        File.WriteAllText(_ws.At("hello.txt"), "goodbye\n");
        File.WriteAllText(_ws.At("src/main.py"), "print(2)\n");
        var diff = await InvokeAsync<GitDiffResult>(T("git_diff"), new { path = "hello.txt" });
        Assert.Contains("-hello\n+goodbye\n", diff.Patch);
        Assert.DoesNotContain("main.py", diff.Patch);
        Assert.Equal((1, 1, 1, false), (diff.FilesChanged, diff.Additions, diff.Deletions, diff.Truncated));
        Assert.Equal([new GitStatusEntry("hello.txt", "modified"), new GitStatusEntry("src/main.py", "modified")], (await InvokeAsync<GitStatusResult>(T("git_status"))).Entries);

        var second = await InvokeAsync<GitCommitResult>(T("git_commit"), new { message = "Say goodbye" });
        var log = await InvokeAsync<GitLogResult>(T("git_log"));
        Assert.Equal([second.Sha, first.Sha], log.Commits.Select(c => c.Sha));
        Assert.Equal(["Say goodbye", "Add hello"], log.Commits.Select(c => c.Message));
        Assert.All(log.Commits, c => Assert.Equal(("SutazAI Agent", "agent@sutazai.local"), (c.Author, c.Email)));
        Assert.Single((await InvokeAsync<GitLogResult>(T("git_log"), new { max = 1 })).Commits);

        // The commits are real: the repository read independently agrees.
        using var repo = new Repository(_ws.Root);
        Assert.Equal(second.Sha, repo.Head.Tip.Sha);
        Assert.Equal(["hello.txt", "src"], repo.Head.Tip.Tree.Select(e => e.Name).Order(StringComparer.Ordinal));
        Assert.Null(repo.Head.Tip[".tmp/scratch"]);
        Assert.Equal("goodbye\n", ((Blob)repo.Head.Tip["hello.txt"].Target).GetContentText());
    }

    [Fact]
    public async Task Commit_InAnExistingRepository_LeavesTheShellScratchFolderOut()
    {
        Repository.Init(_ws.Root);
        Directory.CreateDirectory(_ws.At(".tmp"));
        File.WriteAllText(_ws.At(".tmp/build.log"), "scratch");
        File.WriteAllText(_ws.At("app.txt"), "app");
        var commit = await InvokeAsync<GitCommitResult>(T("git_commit"), new { message = "First" });
        Assert.Equal(1, commit.FilesChanged);
        using var repo = new Repository(_ws.Root);
        Assert.Equal(["app.txt"], repo.Head.Tip.Tree.Select(e => e.Name));
        Assert.Contains("/.tmp/", File.ReadAllLines(_ws.At(".git/info/exclude")));
        Assert.True((await InvokeAsync<GitStatusResult>(T("git_status"))).Clean);
    }

    [Fact]
    public async Task Commit_GoesThroughLibgit2_SoTheRepositorysHooksNeverRun()
    {
        Repository.Init(_ws.Root);
        var marker = Path.Join(_ws.Outside, "hook-ran");
        foreach (var hook in new[] { "pre-commit", "commit-msg", "post-commit", "prepare-commit-msg" })
        {
            var script = _ws.At($".git/hooks/{hook}");
            File.WriteAllText(script, $"#!/bin/sh\necho {hook} >> '{marker}'\n");
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        File.WriteAllText(_ws.At("app.txt"), "app");
        var commit = await InvokeAsync<GitCommitResult>(T("git_commit"), new { message = "First" });
        Assert.Equal(("First", 1), (commit.Message, commit.FilesChanged));
        using var repo = new Repository(_ws.Root);
        Assert.Equal(commit.Sha, repo.Head.Tip.Sha);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public async Task Diff_IsCappedAndPathsStayInside()
    {
        var tools = new GitToolProvider(Wrap(Options(o => o.OutputCapBytes = 1024)), TimeProvider.System).Create(Context(_ws.Root));
        await InvokeAsync<GitInitResult>(Assert.Single(tools, t => t.Name == "git_init"));
        File.WriteAllText(_ws.At("big.txt"), string.Concat(Enumerable.Repeat("line of text\n", 500)));
        var diff = await InvokeAsync<GitDiffResult>(Assert.Single(tools, t => t.Name == "git_diff"));
        Assert.True(diff.Truncated);
        Assert.Equal(1024, System.Text.Encoding.UTF8.GetByteCount(diff.Patch));
        Assert.Contains("contains '..'", (await FailsAsync(Assert.Single(tools, t => t.Name == "git_diff"), new { path = "../outside" })).Message);
        Assert.Equal("max must be between 1 and 200.", (await FailsAsync(Assert.Single(tools, t => t.Name == "git_log"), new { max = 0 })).Message);
    }

    [Fact]
    public async Task DotGitPointingElsewhere_IsRefused()
    {
        var elsewhere = Path.Join(_ws.Outside, "repo");
        Repository.Init(elsewhere);
        Directory.CreateSymbolicLink(_ws.At(".git"), Path.Join(elsewhere, ".git"));
        const string refused = "The workspace's .git is not a plain directory (a file or link that may point elsewhere); refusing to use it.";
        Assert.Equal(refused, (await FailsAsync(T("git_status"))).Message);
        Assert.Equal(refused, (await FailsAsync(T("git_commit"), new { message = "x" })).Message);
        File.Delete(_ws.At(".git"));
        File.WriteAllText(_ws.At(".git"), $"gitdir: {Path.Join(elsewhere, ".git")}\n");
        Assert.Equal(refused, (await FailsAsync(T("git_log"))).Message);
        Assert.Equal(refused, (await FailsAsync(T("git_init"))).Message);
        using var repo = new Repository(elsewhere);
        Assert.Null(repo.Head.Tip);
    }
}

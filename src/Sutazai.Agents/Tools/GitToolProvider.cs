using System.ComponentModel;
using System.Text;
using LibGit2Sharp;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;

namespace Sutazai.Agents.Tools;

public sealed record GitInitResult(string Path, bool Created);

public sealed record GitStatusEntry(string Path, string State);

public sealed record GitStatusResult(string? Branch, bool Clean, IReadOnlyList<GitStatusEntry> Entries);

public sealed record GitDiffResult(string Patch, int FilesChanged, int Additions, int Deletions, bool Truncated);

public sealed record GitCommitInfo(string Sha, string Message, string Author, string Email, DateTimeOffset Date);

public sealed record GitLogResult(IReadOnlyList<GitCommitInfo> Commits);

public sealed record GitCommitResult(string Sha, string Message, int FilesChanged);

/// <summary>
/// git_init, git_status, git_diff, git_log, git_commit on the workspace's own repository, through LibGit2Sharp
/// (libgit2 in-process: no hooks, no external filters, no credential helpers run). Only a repository whose
/// <c>.git</c> is a real directory inside the workspace is opened, so a planted <c>.git</c> file or link cannot point
/// the tools at a repository elsewhere.
/// </summary>
public sealed class GitToolProvider(IOptions<AgentToolOptions> options, TimeProvider time) : IToolProvider
{
    public const string AuthorName = "SutazAI Agent";
    public const string AuthorEmail = "agent@sutazai.local";
    public const int DefaultLog = 20;
    public const int MaxLog = 200;
    public const string ScratchPattern = "/.tmp/";

    private readonly AgentToolOptions _options = options.Value;

    public string Name => "git";

    public string Description => "Initialises, inspects and commits the git repository in the run's workspace.";

    public (bool Available, string? Reason) Health()
    {
        try
        {
            return (GlobalSettings.Version.ToString().Length > 0, null);
        }
        catch (Exception ex) when (ex is DllNotFoundException or TypeInitializationException or BadImageFormatException)
        {
            return (false, $"libgit2 could not be loaded: {ex.Message}");
        }
    }

    public IReadOnlyList<AgentTool> Create(ToolContext context)
    {
        Workspace? opened = null;
        Workspace Workspace() => opened ??= Tools.Workspace.Open(context.Workspace);
        return
        [
            new(AIFunctionFactory.Create(() => Init(Workspace()), "git_init", "Creates a git repository in the workspace (nothing happens when one exists)."),
                SideEffects: true, _ => ToolRisk.Low),
            new(AIFunctionFactory.Create(() => Status(Workspace()), "git_status", "Lists changed, staged and untracked files of the workspace repository."),
                SideEffects: false, _ => ToolRisk.Low),
            new(AIFunctionFactory.Create(
                ([Description("Limit the diff to this file or directory (relative to the workspace).")] string? path = null) => Diff(Workspace(), path),
                "git_diff", "Shows the uncommitted changes (staged, unstaged and new files) against the last commit as a unified diff."),
                SideEffects: false, _ => ToolRisk.Low),
            new(AIFunctionFactory.Create(
                ([Description("How many commits, newest first (default 20, at most 200).")] int? max = null) => Log(Workspace(), max),
                "git_log", "Lists the latest commits of the workspace repository."),
                SideEffects: false, _ => ToolRisk.Low),
            new(AIFunctionFactory.Create(
                ([Description("The commit message.")] string message) => Commit(Workspace(), message),
                "git_commit", $"Stages every change in the workspace and commits it as {AuthorName} <{AuthorEmail}>."),
                SideEffects: true, _ => ToolRisk.Medium),
        ];
    }

    private static GitInitResult Init(Workspace workspace)
    {
        if (Directory.Exists(Path.Join(workspace.Root, ".git")) || File.Exists(Path.Join(workspace.Root, ".git")))
        {
            using var _ = OpenRepository(workspace);
            return new GitInitResult(".", Created: false);
        }
        return Guard(() =>
        {
            Repository.Init(workspace.Root);
            using var repo = new Repository(workspace.Root);
            ExcludeScratch(repo);
            return new GitInitResult(".", Created: true);
        });
    }

    private static GitStatusResult Status(Workspace workspace)
    {
        using var repo = OpenRepository(workspace);
        return Guard(() =>
        {
            var entries = repo.RetrieveStatus(new StatusOptions { IncludeUntracked = true, RecurseUntrackedDirs = true })
                .Where(e => e.State != FileStatus.Unaltered && e.State != FileStatus.Ignored)
                .Select(e => new GitStatusEntry(e.FilePath, Describe(e.State)))
                .OrderBy(e => e.Path, StringComparer.Ordinal)
                .ToList();
            return new GitStatusResult(repo.Head.FriendlyName, entries.Count == 0, entries);
        });
    }

    private GitDiffResult Diff(Workspace workspace, string? path)
    {
        string[]? paths = null;
        if (!string.IsNullOrEmpty(path))
        {
            var target = workspace.Resolve(path, allowRoot: true);
            if (target.Relative != ".") paths = [target.Relative];
        }
        using var repo = OpenRepository(workspace);
        return Guard(() =>
        {
            // A tree-to-workdir diff through the index also lists untracked files as added, like git_commit records them.
            var patch = repo.Diff.Compare<Patch>(repo.Head.Tip?.Tree, DiffTargets.Index | DiffTargets.WorkingDirectory, paths,
                new ExplicitPathsOptions { ShouldFailOnUnmatchedPath = false }, new CompareOptions { IncludeUnmodified = false });
            var bytes = Encoding.UTF8.GetBytes(patch.Content);
            var truncated = bytes.Length > _options.OutputCapBytes;
            return new GitDiffResult(TextCaps.DecodePrefix(bytes, _options.OutputCapBytes, truncated), patch.Count(), patch.LinesAdded, patch.LinesDeleted, truncated);
        });
    }

    private static GitLogResult Log(Workspace workspace, int? max)
    {
        var count = max ?? DefaultLog;
        if (count < 1 || count > MaxLog) throw new ToolException($"max must be between 1 and {MaxLog}.");
        using var repo = OpenRepository(workspace);
        return Guard(() => new GitLogResult(repo.Head.Tip is null
            ? []
            : repo.Commits.Take(count).Select(c => new GitCommitInfo(c.Sha, c.Message.TrimEnd('\n'), c.Author.Name, c.Author.Email, c.Author.When)).ToList()));
    }

    private GitCommitResult Commit(Workspace workspace, string message)
    {
        if (string.IsNullOrWhiteSpace(message)) throw new ToolException("Give a commit message.");
        using var repo = OpenRepository(workspace);
        return Guard(() =>
        {
            ExcludeScratch(repo);
            Commands.Stage(repo, "*");
            var parent = repo.Head.Tip;
            var changes = repo.Diff.Compare<TreeChanges>(parent?.Tree, DiffTargets.Index);
            if (changes.Count == 0) throw new ToolException("Nothing to commit: the workspace has no changes since the last commit.");
            var signature = new Signature(AuthorName, AuthorEmail, time.GetUtcNow());
            var commit = repo.Commit(message.Trim() + "\n", signature, signature);
            return new GitCommitResult(commit.Sha, commit.Message.TrimEnd('\n'), changes.Count);
        });
    }

    /// <summary>
    /// Lists the shell's scratch folder (TMPDIR = workspace/.tmp) in the repository's local, untracked exclude file,
    /// so temporary files never end up in an agent's commit.
    /// </summary>
    private static void ExcludeScratch(Repository repo)
    {
        var exclude = Path.Join(repo.Info.Path, "info", "exclude");
        var lines = File.Exists(exclude) ? File.ReadAllLines(exclude) : [];
        if (lines.Contains(ScratchPattern)) return;
        Directory.CreateDirectory(Path.GetDirectoryName(exclude)!);
        var prefix = lines.Length > 0 && !File.ReadAllText(exclude).EndsWith('\n') ? "\n" : "";
        File.AppendAllText(exclude, $"{prefix}# SutazAI agent shell scratch folder (TMPDIR)\n{ScratchPattern}\n");
    }

    private static Repository OpenRepository(Workspace workspace)
    {
        var dotGit = new DirectoryInfo(Path.Join(workspace.Root, ".git"));
        if (!dotGit.Exists && !File.Exists(dotGit.FullName)) throw new ToolException("The workspace is not a git repository; call git_init first.");
        if (!dotGit.Exists || dotGit.LinkTarget is not null)
            throw new ToolException("The workspace's .git is not a plain directory (a file or link that may point elsewhere); refusing to use it.");
        return Guard(() => new Repository(workspace.Root));
    }

    private static string Describe(FileStatus state)
    {
        var parts = new List<string>();
        if (state.HasFlag(FileStatus.NewInIndex)) parts.Add("added");
        if (state.HasFlag(FileStatus.ModifiedInIndex)) parts.Add("modified (staged)");
        if (state.HasFlag(FileStatus.DeletedFromIndex)) parts.Add("deleted (staged)");
        if (state.HasFlag(FileStatus.RenamedInIndex)) parts.Add("renamed (staged)");
        if (state.HasFlag(FileStatus.NewInWorkdir)) parts.Add("untracked");
        if (state.HasFlag(FileStatus.ModifiedInWorkdir)) parts.Add("modified");
        if (state.HasFlag(FileStatus.DeletedFromWorkdir)) parts.Add("deleted");
        if (state.HasFlag(FileStatus.RenamedInWorkdir)) parts.Add("renamed");
        if (state.HasFlag(FileStatus.TypeChangeInWorkdir) || state.HasFlag(FileStatus.TypeChangeInIndex)) parts.Add("type changed");
        if (state.HasFlag(FileStatus.Conflicted)) parts.Add("conflicted");
        return parts.Count == 0 ? state.ToString() : string.Join(", ", parts);
    }

    private static T Guard<T>(Func<T> action)
    {
        try
        {
            return action();
        }
        catch (LibGit2SharpException ex)
        {
            throw new ToolException($"git: {ex.Message}");
        }
        catch (IOException ex)
        {
            throw new ToolException(ex.Message);
        }
    }
}

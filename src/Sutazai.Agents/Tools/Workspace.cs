using Sutazai.Data;
using System.Text;

namespace Sutazai.Agents.Tools;

/// <summary>A path inside the workspace: the real location to operate on, and the relative path the model gave.</summary>
internal sealed record WorkspacePath(string FullPath, string Relative);

/// <summary>
/// Confines file access to one run's workspace directory. A path must be relative, without <c>..</c> or NUL bytes, and
/// every component that exists is checked: a symbolic link is followed only when its real target stays inside the
/// workspace, so neither <c>../x</c> nor a link to <c>/etc</c> (or a linked directory) reaches anything outside.
/// No path reaches a <c>.git</c> directory (in any letter case, also through a link inside the workspace): hooks and
/// config there would run code the next time anyone uses git in the repository, so git is touched only through the
/// git tools (LibGit2Sharp, which runs no hooks).
/// </summary>
internal sealed class Workspace
{
    public const int MaxComponentBytes = 255;
    public const int MaxPathBytes = 4096;

    private Workspace(string root) => Root = root;

    /// <summary>The workspace's real path (symbolic links in the configured path resolved).</summary>
    public string Root { get; }

    /// <summary>Opens (creating when missing) the workspace directory.</summary>
    public static Workspace Open(string path)
    {
        if (string.IsNullOrWhiteSpace(path) || !Path.IsPathFullyQualified(path))
            throw new InvalidOperationException($"The run workspace must be an absolute path, not '{path}'.");
        PrivateFiles.CreateDirectory(path);
        var real = Native.RealPath(path) ?? throw new InvalidOperationException($"The run workspace '{path}' cannot be resolved.");
        return new Workspace(real);
    }

    public bool Contains(string realPath) =>
        realPath == Root || realPath.StartsWith(Root.EndsWith('/') ? Root : Root + "/", StringComparison.Ordinal);

    /// <summary>
    /// Resolves a relative path. Existing components are replaced by their real paths and must stay inside; the
    /// components after the first missing one are appended as given. With <paramref name="followFinalLink"/> false a
    /// final symbolic link is returned as the link itself (to delete the link, not its target) but must still point
    /// inside.
    /// </summary>
    public WorkspacePath Resolve(string? path, bool allowRoot, bool followFinalLink = true)
    {
        var segments = Parse(path);
        if (segments.Count == 0)
        {
            if (!allowRoot) throw new ToolException("Give a path relative to the workspace, for example 'notes/todo.txt'.");
            return new WorkspacePath(Root, ".");
        }

        var relative = string.Join('/', segments);
        var current = Root;
        for (var i = 0; i < segments.Count; i++)
        {
            var candidate = Path.Join(current, segments[i]);
            var shown = string.Join('/', segments.Take(i + 1));
            var info = new FileInfo(candidate);
            if (info.LinkTarget is not null)
            {
                var target = Native.RealPath(candidate)
                    ?? throw new ToolException($"'{shown}' is a symbolic link whose target does not exist.");
                if (!Contains(target)) throw new ToolException($"'{shown}' is a symbolic link that leads outside the workspace; access refused.");
                if (IsGitPath(Path.GetRelativePath(Root, target))) throw new ToolException($"'{shown}' is a symbolic link into a .git directory; access refused.");
                current = i == segments.Count - 1 && !followFinalLink ? candidate : target;
            }
            else if (info.Exists || Directory.Exists(candidate))
            {
                current = candidate;
            }
            else
            {
                return new WorkspacePath(Path.Join([current, .. segments.Skip(i)]), relative);
            }
        }
        return new WorkspacePath(current, relative);
    }

    /// <summary>The path's components with empty and "." ones dropped, or a ToolException saying what is wrong.</summary>
    private static List<string> Parse(string? path)
    {
        if (string.IsNullOrEmpty(path)) return [];
        if (path.Contains('\0', StringComparison.Ordinal)) throw new ToolException("The path contains a NUL byte; give a plain relative path.");
        if (Encoding.UTF8.GetByteCount(path) > MaxPathBytes) throw new ToolException($"The path is longer than {MaxPathBytes} bytes.");
        if (path.StartsWith('/')) throw new ToolException($"'{path}' is an absolute path; give a path relative to the workspace, for example 'notes/todo.txt'.");
        var segments = new List<string>();
        foreach (var segment in path.Split('/'))
        {
            if (segment.Length == 0 || segment == ".") continue;
            if (segment == "..") throw new ToolException($"'{path}' contains '..'; paths must stay inside the workspace.");
            if (IsGitName(segment)) throw new ToolException($"'{Shorten(path)}' is inside a .git directory; the files tools do not touch git's own files (use the git tools).");
            if (Encoding.UTF8.GetByteCount(segment) > MaxComponentBytes)
                throw new ToolException($"A name in '{Shorten(path)}' is longer than {MaxComponentBytes} bytes.");
            segments.Add(segment);
        }
        return segments;
    }

    /// <summary><c>.git</c> in any letter case (case-insensitive file systems open <c>.GIT</c> as <c>.git</c>).</summary>
    private static bool IsGitName(string segment) => string.Equals(segment, ".git", StringComparison.OrdinalIgnoreCase);

    private static bool IsGitPath(string relative) => relative.Split('/').Any(IsGitName);

    private static string Shorten(string path) => path.Length <= 80 ? path : path[..40] + "…" + path[^20..];
}

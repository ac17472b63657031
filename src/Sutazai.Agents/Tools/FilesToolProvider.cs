using System.ComponentModel;
using System.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;

namespace Sutazai.Agents.Tools;

public sealed record FileEntry(string Name, string Type, long? SizeBytes, DateTime ModifiedUtc);

public sealed record FileListResult(string Path, IReadOnlyList<FileEntry> Entries, bool Truncated);

public sealed record FileReadResult(string Path, string Content, long SizeBytes, bool Truncated);

public sealed record FileWriteResult(string Path, long BytesWritten, bool Created);

public sealed record FileDeleteResult(string Path, string Type);

public sealed record FileEditResult(string Path, int Line, int RemovedLines, int AddedLines);

/// <summary>files_list, files_read, files_write, files_delete — confined to the run's workspace (see <see cref="Workspace"/>).</summary>
public sealed class FilesToolProvider(IOptions<AgentToolOptions> options) : IToolProvider
{
    public const int DefaultReadBytes = 65536;

    private readonly AgentToolOptions _options = options.Value;

    public string Name => "files";

    public string Description => "List, read, write and delete files inside the run's workspace (relative paths only).";

    public (bool Available, string? Reason) Health() => (true, null);

    public IReadOnlyList<AgentTool> Create(ToolContext context)
    {
        Workspace? opened = null;
        Workspace Workspace() => opened ??= Tools.Workspace.Open(context.Workspace);
        return
        [
            new(AIFunctionFactory.Create(
                ([Description("Directory relative to the workspace; omit for the workspace itself.")] string? path = null) => List(Workspace(), path),
                "files_list", "Lists a directory of the workspace: name, type (file, directory, symlink), size and modification time."),
                SideEffects: false, _ => ToolRisk.Low),
            new(AIFunctionFactory.Create(
                ([Description("File path relative to the workspace.")] string path,
                 [Description("Most bytes to return (default 65536).")] int? maxBytes = null) => Read(Workspace(), path, maxBytes),
                "files_read", "Reads a UTF-8 text file of the workspace."),
                SideEffects: false, _ => ToolRisk.Low),
            new(AIFunctionFactory.Create(
                ([Description("File path relative to the workspace; missing directories are created.")] string path,
                 [Description("The complete new content of the file (UTF-8 text).")] string content) => Write(Workspace(), path, content),
                "files_write", "Creates or replaces a text file in the workspace."),
                SideEffects: true, _ => ToolRisk.Medium),
            new(AIFunctionFactory.Create(
                ([Description("File path relative to the workspace.")] string path,
                 [Description("The exact text to replace; it must occur exactly once in the file (include enough surrounding lines).")] string search,
                 [Description("The text to put in its place.")] string replace) => Edit(Workspace(), path, search, replace),
                "files_edit", "Edits a text file with one search/replace block: the exact search text (found once) is replaced."),
                SideEffects: true, _ => ToolRisk.Medium),
            new(AIFunctionFactory.Create(
                ([Description("File or directory path relative to the workspace; a directory is deleted with its contents.")] string path) => Delete(Workspace(), path),
                "files_delete", "Deletes a file, symbolic link or directory (recursively) from the workspace."),
                SideEffects: true, _ => ToolRisk.High),
        ];
    }

    private FileListResult List(Workspace workspace, string? path)
    {
        var target = workspace.Resolve(path, allowRoot: true);
        if (!Directory.Exists(target.FullPath))
            throw new ToolException(File.Exists(target.FullPath) ? $"'{target.Relative}' is a file; use files_read." : $"No directory '{target.Relative}' in the workspace.");
        return Guard(workspace, () =>
        {
            var entries = new DirectoryInfo(target.FullPath).EnumerateFileSystemInfos()
                .OrderBy(e => e.Name, StringComparer.Ordinal)
                .Take(_options.FileListMaxEntries + 1)
                .Select(e => new FileEntry(e.Name,
                    e.LinkTarget is not null ? "symlink" : e is DirectoryInfo ? "directory" : "file",
                    e is FileInfo { LinkTarget: null } f ? f.Length : null,
                    e.LastWriteTimeUtc))
                .ToList();
            var truncated = entries.Count > _options.FileListMaxEntries;
            if (truncated) entries.RemoveAt(entries.Count - 1);
            return new FileListResult(target.Relative, entries, truncated);
        });
    }

    private FileReadResult Read(Workspace workspace, string path, int? maxBytes)
    {
        var limit = maxBytes ?? Math.Min(DefaultReadBytes, _options.FileReadMaxBytes);
        if (limit < 1 || limit > _options.FileReadMaxBytes) throw new ToolException($"maxBytes must be between 1 and {_options.FileReadMaxBytes}.");
        var target = workspace.Resolve(path, allowRoot: false);
        if (Directory.Exists(target.FullPath)) throw new ToolException($"'{target.Relative}' is a directory; use files_list.");
        if (!File.Exists(target.FullPath)) throw new ToolException($"No file '{target.Relative}' in the workspace.");
        return Guard(workspace, () =>
        {
            // FIFOs and sockets report size 0; opening one would block until a writer appears, so size 0 is never opened.
            if (new FileInfo(target.FullPath).Length == 0) return new FileReadResult(target.Relative, "", 0, false);
            using var stream = new FileStream(target.FullPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            var buffer = new byte[(int)Math.Min(limit, stream.Length)];
            var read = stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
            var span = buffer.AsSpan(0, read);
            if (span.Contains((byte)0)) throw new ToolException($"'{target.Relative}' is a binary file (it contains NUL bytes); files_read returns text only.");
            var truncated = stream.Length > read;
            return new FileReadResult(target.Relative, TextCaps.DecodePrefix(span, read, cut: truncated), stream.Length, truncated);
        });
    }

    private FileWriteResult Write(Workspace workspace, string path, string content)
    {
        ArgumentNullException.ThrowIfNull(content);
        var bytes = Encoding.UTF8.GetBytes(content);
        if (bytes.Length > _options.FileWriteMaxBytes) throw new ToolException($"The content is {bytes.Length} bytes; files_write accepts at most {_options.FileWriteMaxBytes}.");
        var target = workspace.Resolve(path, allowRoot: false);
        if (Directory.Exists(target.FullPath)) throw new ToolException($"'{target.Relative}' is a directory.");
        return Guard(workspace, () =>
        {
            var directory = Path.GetDirectoryName(target.FullPath)!;
            Directory.CreateDirectory(directory);
            // The containing directory exists now; resolving again catches a link planted in the meantime.
            if (Native.RealPath(directory) is not { } realDirectory || !workspace.Contains(realDirectory))
                throw new ToolException($"'{target.Relative}' does not lead to a directory inside the workspace.");
            var created = !File.Exists(target.FullPath);
            // Write a new file (O_CREAT|O_EXCL never follows a link) and rename it over the target: rename replaces
            // a link instead of writing through it, and readers never see a half-written file.
            var temporary = Path.Join(realDirectory, $".{Guid.NewGuid():N}.tmp");
            try
            {
                using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None))
                    stream.Write(bytes);
                File.Move(temporary, Path.Join(realDirectory, Path.GetFileName(target.FullPath)), overwrite: true);
            }
            finally
            {
                File.Delete(temporary);
            }
            return new FileWriteResult(target.Relative, bytes.Length, created);
        });
    }

    /// <summary>An Aider-style search/replace edit: the search text must match exactly once, so an edit is never ambiguous.</summary>
    private FileEditResult Edit(Workspace workspace, string path, string search, string replace)
    {
        if (string.IsNullOrEmpty(search)) throw new ToolException("search must not be empty; use files_write to create a file.");
        var current = Read(workspace, path, _options.FileReadMaxBytes);
        if (current.Truncated) throw new ToolException($"'{current.Path}' is larger than {_options.FileReadMaxBytes} bytes; it cannot be edited.");
        var first = current.Content.IndexOf(search, StringComparison.Ordinal);
        if (first < 0) throw new ToolException($"The search text was not found in '{current.Path}'. Read the file again and copy the lines exactly.");
        if (current.Content.IndexOf(search, first + 1, StringComparison.Ordinal) >= 0)
            throw new ToolException($"The search text occurs more than once in '{current.Path}'; include more surrounding lines so it is unique.");
        var updated = string.Concat(current.Content.AsSpan(0, first), replace, current.Content.AsSpan(first + search.Length));
        Write(workspace, path, updated);
        var line = current.Content.AsSpan(0, first).Count('\n') + 1;
        return new FileEditResult(current.Path, line, search.Split('\n').Length, replace.Length == 0 ? 0 : replace.Split('\n').Length);
    }

    private static FileDeleteResult Delete(Workspace workspace, string path)
    {
        var target = workspace.Resolve(path, allowRoot: false, followFinalLink: false);
        var info = new FileInfo(target.FullPath);
        return Guard(workspace, () =>
        {
            if (info.LinkTarget is not null)
            {
                info.Delete();
                return new FileDeleteResult(target.Relative, "symlink");
            }
            if (Directory.Exists(target.FullPath))
            {
                // Directory.Delete removes links inside the tree without following them.
                Directory.Delete(target.FullPath, recursive: true);
                return new FileDeleteResult(target.Relative, "directory");
            }
            if (!info.Exists) throw new ToolException($"No file or directory '{target.Relative}' in the workspace.");
            info.Delete();
            return new FileDeleteResult(target.Relative, "file");
        });
    }

    /// <summary>Turns file-system errors into messages the model can act on, with workspace-relative paths.</summary>
    private static T Guard<T>(Workspace workspace, Func<T> action)
    {
        string Relative(string message) => message.Replace(workspace.Root + "/", "", StringComparison.Ordinal).Replace(workspace.Root, ".", StringComparison.Ordinal);
        try
        {
            return action();
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new ToolException($"Permission denied: {Relative(ex.Message)}");
        }
        catch (IOException ex)
        {
            throw new ToolException(Relative(ex.Message));
        }
    }
}

using System.IO.Compression;
using System.Text.Json;
using Sutazai.Data;
using Sutazai.Data.Entities;

namespace Sutazai.Agents;

/// <summary>A file of a run's workspace: its path relative to the workspace and its size.</summary>
public sealed record ArtifactView(string Path, long Size);

/// <summary>
/// A finished run's workspace, kept where every node can read it. With the database content store (several nodes),
/// the node that ran the run stores its workspace as <c>runs/&lt;id&gt;/workspace.zip</c> plus the file list
/// (<c>runs/&lt;id&gt;/artifacts.json</c>) when the run ends, so any node lists and serves the files; on one node
/// (the data-dir store) the workspace folder itself is what is served, and nothing is copied.
/// </summary>
public sealed class RunArchive(IContentStore store, AgentWorkspaces workspaces)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static string ZipKey(Guid runId) => $"runs/{runId:N}/workspace.zip";

    public static string ListKey(Guid runId) => $"runs/{runId:N}/artifacts.json";

    /// <summary>Whether finished workspaces are copied into the shared store (the database store).</summary>
    public bool Shares => store.Kind != "filesystem";

    /// <summary>Regular files under a workspace; symbolic links are never followed or listed, nor <c>.tmp</c> and <c>.git</c>.</summary>
    public static IEnumerable<FileInfo> Files(string root) =>
        new DirectoryInfo(root).EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true })
            .Where(f => !f.FullName.Contains($"{Path.DirectorySeparatorChar}.tmp{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.FullName.Contains($"{Path.DirectorySeparatorChar}.git{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .OrderBy(f => f.FullName, StringComparer.Ordinal);

    public static IReadOnlyList<ArtifactView> List(string root) =>
        Files(root).Select(f => new ArtifactView(Path.GetRelativePath(root, f.FullName).Replace('\\', '/'), f.Length)).ToList();

    /// <summary>Writes the workspace's files as a zip into <paramref name="target"/>.</summary>
    public static async Task ZipAsync(string root, Stream target, CancellationToken ct)
    {
        using var zip = new ZipArchive(target, ZipArchiveMode.Create, leaveOpen: true);
        foreach (var f in Files(root))
        {
            var entry = zip.CreateEntry(Path.GetRelativePath(root, f.FullName).Replace('\\', '/'), CompressionLevel.Fastest);
            await using var entryStream = await entry.OpenAsync(ct);
            await using var source = f.OpenRead();
            await source.CopyToAsync(entryStream, ct);
        }
    }

    /// <summary>Copies a finished run's own workspace into the shared store (nothing for a repository run or on one node).</summary>
    public async Task SaveAsync(AgentRun run, CancellationToken ct)
    {
        if (!Shares || CrewSpec.Repository(run.Options) is not null) return;
        var root = workspaces.RunFolder(run.Id);
        if (!Directory.Exists(root)) return;
        // ZipArchive needs a seekable stream for its central directory: build in an owner-only temp file.
        var folder = Path.Combine(workspaces.Root, ".archive");
        var name = $"{run.Id:N}.{Guid.NewGuid():N}.zip";
        var temp = Path.Combine(folder, name);
        try
        {
            await using (var file = PrivateFiles.CreateScratch(folder, name))
            {
                await ZipAsync(root, file, ct);
                file.Position = 0;
                await store.PutAsync(ZipKey(run.Id), file, ct);
            }
            await store.PutAsync(ListKey(run.Id), new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(List(root), Json)), ct);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    /// <summary>The stored zip of a finished run's workspace, or null.</summary>
    public Task<Stream?> OpenZipAsync(Guid runId, CancellationToken ct) => Shares ? store.OpenAsync(ZipKey(runId), ct) : Task.FromResult<Stream?>(null);

    /// <summary>The stored file list of a finished run's workspace, or null.</summary>
    public async Task<IReadOnlyList<ArtifactView>?> ListStoredAsync(Guid runId, CancellationToken ct)
    {
        if (!Shares || await store.OpenAsync(ListKey(runId), ct) is not { } stream) return null;
        await using (stream)
            return await JsonSerializer.DeserializeAsync<List<ArtifactView>>(stream, Json, ct);
    }

    public async Task DeleteAsync(Guid runId, CancellationToken ct)
    {
        await store.DeleteAsync(ZipKey(runId), ct);
        await store.DeleteAsync(ListKey(runId), ct);
    }
}

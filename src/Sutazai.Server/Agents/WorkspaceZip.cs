using Sutazai.Agents;
using Sutazai.Server.Identity;

namespace Sutazai.Server.Agents;

/// <summary>
/// A run's workspace as a zip download, owner-scoped (another user's run is 404). Shared by the API route
/// (<c>GET /api/v1/runs/{id}/artifacts/workspace.zip</c>) and the web UI's cookie route, so neither calls the other.
/// </summary>
public static class WorkspaceZip
{
    /// <summary>
    /// Sends the owner's run workspace as a zip (404 problem for another user's run or a run without files). Shared by
    /// the API route and the UI's cookie-authenticated download.
    /// </summary>
    public static async Task WriteAsync(Guid userId, Guid id, HttpContext http, AgentRunService service, AgentWorkspaces workspaces, RunArchive archive, CancellationToken ct)
    {
        var run = await service.FindAsync(userId, id, ct);
        if (run is null)
        {
            await Problems.NotFound("No run with that id.").ExecuteAsync(http);
            return;
        }
        var root = workspaces.For(run);
        if (CrewSpec.Repository(run.Options) is not null)
        {
            await Problems.NotFound("This run has no workspace files.").ExecuteAsync(http);
            return;
        }
        if (!Directory.Exists(root))
        {
            // Not on this node: the zip the node that ran it stored when it finished (several nodes).
            await using var stored = await archive.OpenZipAsync(run.Id, ct);
            if (stored is null)
            {
                await Problems.NotFound("This run has no workspace files.").ExecuteAsync(http);
                return;
            }
            Headers(http, id);
            http.Response.ContentLength = stored.Length;
            await stored.CopyToAsync(http.Response.Body, ct);
            return;
        }
        Headers(http, id);
        // Build in a temp file: ZipArchive needs a seekable stream for its central directory, and the response is not.
        var temp = Path.GetTempFileName();
        try
        {
            await using (var file = File.Create(temp))
            {
                await RunArchive.ZipAsync(root, file, ct);
            }
            await using var read = File.OpenRead(temp);
            http.Response.ContentLength = read.Length;
            await read.CopyToAsync(http.Response.Body, ct);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    private static void Headers(HttpContext http, Guid id)
    {
        http.Response.ContentType = "application/zip";
        http.Response.Headers.ContentDisposition = $"attachment; filename=\"run-{id:N}-workspace.zip\"";
    }
}

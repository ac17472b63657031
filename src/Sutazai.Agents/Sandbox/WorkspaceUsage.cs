using Microsoft.EntityFrameworkCore;
using Sutazai.Data;

namespace Sutazai.Agents.Sandbox;

/// <summary>Bytes agent workspaces hold on disk: one run's, and all of one user's runs' (for the sandbox's quotas).</summary>
public static class WorkspaceUsage
{
    private static readonly EnumerationOptions Everything = new()
    {
        RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true, ReturnSpecialDirectories = false,
    };

    /// <summary>The sizes of the regular files under <paramref name="root"/>; symbolic links are not followed.</summary>
    public static long Of(string root) =>
        Directory.Exists(root) ? new DirectoryInfo(root).EnumerateFiles("*", Everything).Sum(f => f.Length) : 0;

    /// <summary>
    /// The user's other run workspaces under the runs folder (<paramref name="exceptRunId"/>'s is measured by the caller
    /// already), or null when no database is at hand (tool tests).
    /// </summary>
    public static async Task<long?> OfUserAsync(IServiceProvider services, Guid userId, Guid exceptRunId, CancellationToken ct)
    {
        var workspaces = services.GetService<AgentWorkspaces>();
        if (workspaces is null) return null;
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetService<AppDbContext>();
        if (db is null) return null;
        var runs = await db.AgentRuns.AsNoTracking().Where(r => r.UserId == userId && r.Id != exceptRunId).Select(r => r.Id).ToListAsync(ct);
        return runs.Sum(id => Of(workspaces.RunFolder(id)));
    }
}

using System.Reflection;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Server.Configuration;
using Sutazai.Server.Identity;

namespace Sutazai.Server.Hosting;

/// <summary>
/// Service discovery (what the original SutazAI meant Consul for), in the database every node already shares: each
/// node upserts its row in <c>cluster_nodes</c> every <c>Sutazai:Cluster:HeartbeatSeconds</c> — role, version,
/// address, host, process, start time, active generations, queue depth — and marks it stopped when it shuts down
/// cleanly. A node that misses heartbeats for <c>Sutazai:Cluster:NodeTimeoutSeconds</c> is listed as gone; rows of
/// nodes gone for a week are pruned.
/// </summary>
public sealed class NodeRegistry(IServiceScopeFactory scopes, NodeIdentity node, Warmup warmup, SutazaiMetrics metrics, IServer server,
    IConfiguration configuration, IOptionsMonitor<ClusterOptions> options, TimeProvider time, ILogger<NodeRegistry> logger) : BackgroundService
{
    public static readonly TimeSpan PruneAfter = TimeSpan.FromDays(7);

    /// <summary>The server's version as its assembly states it (the informational version, without the commit suffix).</summary>
    public static string Version { get; } = (typeof(NodeRegistry).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0").Split('+')[0];

    private readonly DateTime _startedAt = time.GetUtcNow().UtcDateTime;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await warmup.WaitAsync(stoppingToken);
        }
        catch (Exception) when (!stoppingToken.IsCancellationRequested)
        {
            return; // the warm-up failed: the server is stopping
        }
        var pruned = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await BeatAsync(stopped: false, stoppingToken);
                if (!pruned) pruned = await PruneAsync(stoppingToken) >= 0;
                await SettleRepliesOfGoneNodesAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning(ex, "Could not write this node's heartbeat to the node registry: {Message}", ex.Message);
            }
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(options.CurrentValue.HeartbeatSeconds), time, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (!warmup.Done.IsCompletedSuccessfully) return;
        try
        {
            await BeatAsync(stopped: true, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogWarning(ex, "Could not mark this node stopped in the node registry: {Message}", ex.Message);
        }
    }

    private async Task BeatAsync(bool stopped, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var now = time.GetUtcNow().UtcDateTime;
        var row = await db.ClusterNodes.FirstOrDefaultAsync(n => n.Id == node.Id, ct);
        if (row is null)
        {
            row = new ClusterNode { Id = node.Id, Role = configuration.Role(), Version = Version, Host = Environment.MachineName };
            db.ClusterNodes.Add(row);
        }
        row.Role = configuration.Role();
        row.Version = Version;
        row.Host = Environment.MachineName;
        row.ProcessId = Environment.ProcessId;
        row.Address = Address();
        row.StartedAt = _startedAt;
        row.HeartbeatAt = now;
        row.StoppedAt = stopped ? now : null;
        row.ActiveGenerations = metrics.ActiveGenerations;
        row.QueueDepth = metrics.QueuedTasks;
        await db.SaveChangesAsync(ct);
    }

    /// <summary>
    /// Replies a node was generating when it died can never finish: once the registry lists that node as gone (no
    /// heartbeat for <c>Sutazai:Cluster:NodeTimeoutSeconds</c>) or stopped, any live node marks them interrupted,
    /// as the node itself would at its next start — so a conversation is never left generating forever and its next
    /// message goes through another node.
    /// </summary>
    private async Task SettleRepliesOfGoneNodesAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var now = time.GetUtcNow().UtcDateTime;
        var cutoff = now - TimeSpan.FromSeconds(options.CurrentValue.NodeTimeoutSeconds);
        // Only replies the dead process started: made before it stopped, or before its last heartbeat was due again —
        // a process restarted on that node's data dir may be serving new replies before its own first heartbeat.
        var beat = (double)options.CurrentValue.HeartbeatSeconds * 2;
        var settled = await Conversations.InterruptedReplies.SettleAsync(db.Messages
            .Where(m => m.Status == MessageStatus.Streaming && m.GeneratingNode != null && m.GeneratingNode != node.Id
                && db.ClusterNodes.Any(n => n.Id == m.GeneratingNode
                    && ((n.StoppedAt != null && m.CreatedAt <= n.StoppedAt)
                        || (n.StoppedAt == null && n.HeartbeatAt < cutoff && m.CreatedAt <= n.HeartbeatAt.AddSeconds(beat))))), now, ct);
        if (settled > 0) logger.LogWarning("Marked {Count} reply(ies) of nodes that stopped or went silent as interrupted", settled);
    }

    private async Task<int> PruneAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var before = time.GetUtcNow().UtcDateTime - PruneAfter;
        return await db.ClusterNodes.Where(n => n.HeartbeatAt < before).ExecuteDeleteAsync(ct);
    }

    private string? Address()
    {
        if (options.CurrentValue.AdvertisedUrl is { Length: > 0 } advertised) return advertised;
        var addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses;
        return addresses is { Count: > 0 } ? string.Join(", ", addresses) : null;
    }
}

/// <summary>A node as <c>GET /api/v1/admin/nodes</c> lists it; <c>status</c> is <c>up</c>, <c>gone</c> (missed heartbeats) or <c>stopped</c>.</summary>
public sealed record NodeResponse(string Id, string Role, string Version, string? Address, string Host, int ProcessId, DateTime StartedAt,
    DateTime HeartbeatAt, DateTime? StoppedAt, int ActiveGenerations, long? QueueDepth, string Status, bool Self);

public static class NodesApi
{
    public static IEndpointRouteBuilder MapNodesApi(this IEndpointRouteBuilder routes)
    {
        routes.MapGroup("/api/v1/admin/nodes").WithTags("Admin").RequireAuthorization(IdentitySetup.AdminPolicy)
            .MapGet("", (NodeDirectory nodes, CancellationToken ct) => nodes.ListAsync(ct))
            .WithSummary("Every server process that has registered: role, version, address, heartbeat, load, and whether it is up, gone or stopped.");
        return routes;
    }
}

/// <summary>Reads the node registry for the API and the monitor page.</summary>
public sealed class NodeDirectory(AppDbContext db, NodeIdentity node, IOptionsMonitor<ClusterOptions> options, TimeProvider time)
{
    public async Task<Ok<List<NodeResponse>>> ListAsync(CancellationToken ct) => TypedResults.Ok(await ReadAsync(ct));

    public async Task<List<NodeResponse>> ReadAsync(CancellationToken ct)
    {
        var rows = await db.ClusterNodes.AsNoTracking().ToListAsync(ct);
        var cutoff = time.GetUtcNow().UtcDateTime - TimeSpan.FromSeconds(options.CurrentValue.NodeTimeoutSeconds);
        return [.. rows
            .Select(n => new NodeResponse(n.Id, n.Role, n.Version, n.Address, n.Host, n.ProcessId, n.StartedAt, n.HeartbeatAt, n.StoppedAt,
                n.ActiveGenerations, n.QueueDepth, n.StoppedAt is not null ? "stopped" : n.HeartbeatAt < cutoff ? "gone" : "up", n.Id == node.Id))
            .OrderBy(n => n.Status switch { "up" => 0, "gone" => 1, _ => 2 })
            .ThenBy(n => n.StartedAt)];
    }
}

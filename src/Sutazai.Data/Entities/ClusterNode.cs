namespace Sutazai.Data.Entities;

/// <summary>
/// One server process of the cluster, as it last reported itself (<c>cluster_nodes</c>): written by the node's own
/// heartbeat, read by <c>GET /api/v1/admin/nodes</c> and the monitor page. A node that stops cleanly sets
/// <see cref="StoppedAt"/>; one that dies just stops beating.
/// </summary>
public sealed class ClusterNode
{
    /// <summary>The node's lasting id (<c>&lt;DataDir&gt;/node-id</c>).</summary>
    public required string Id { get; set; }

    /// <summary><c>all</c>, <c>api</c> or <c>worker</c>.</summary>
    public required string Role { get; set; }

    public required string Version { get; set; }

    /// <summary>Where the node listens (<c>Sutazai:Cluster:AdvertisedUrl</c>, or its bound addresses).</summary>
    public string? Address { get; set; }

    public required string Host { get; set; }

    public int ProcessId { get; set; }

    public DateTime StartedAt { get; set; }

    public DateTime HeartbeatAt { get; set; }

    public DateTime? StoppedAt { get; set; }

    /// <summary>Generation requests queued or running on the node at its last heartbeat.</summary>
    public int ActiveGenerations { get; set; }

    /// <summary>Tasks waiting on the queue as the node's worker last counted them (null: the node runs no worker).</summary>
    public long? QueueDepth { get; set; }
}

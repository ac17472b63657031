namespace Sutazai.Data.Entities;

/// <summary>
/// One message of the embedded durable queue (<c>task_queue</c>): a task on <c>agent.tasks</c> or an event on
/// <c>system.events</c>. Workers claim rows with a conditional UPDATE that sets a lease; a lease that runs out (the
/// worker died) makes the row claimable again, so delivery is at-least-once.
/// </summary>
public sealed class QueuedTask
{
    public Guid Id { get; set; }

    /// <summary>The logical queue: <c>agent.tasks</c> or <c>system.events</c>.</summary>
    public required string Queue { get; set; }

    /// <summary>The task kind (handler key) for tasks; the routing key for events.</summary>
    public required string Kind { get; set; }

    /// <summary>JSON text.</summary>
    public required string Payload { get; set; }

    /// <summary>queued | leased | done | dead (<see cref="QueuedTaskStatus"/>).</summary>
    public required string Status { get; set; }

    /// <summary>Deliveries so far; the claim that hands the row to a worker increments it.</summary>
    public int Attempt { get; set; }

    /// <summary>Not claimable before this instant (retry backoff).</summary>
    public DateTime AvailableAt { get; set; }

    public string? LeaseOwner { get; set; }

    public DateTime? LeaseUntil { get; set; }

    public string? LastError { get; set; }

    public DateTime CreatedAt { get; set; }

    public DateTime UpdatedAt { get; set; }
}

public static class QueuedTaskStatus
{
    public const string Queued = "queued";
    public const string Leased = "leased";
    public const string Done = "done";
    public const string Dead = "dead";
}

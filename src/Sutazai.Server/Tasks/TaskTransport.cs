namespace Sutazai.Server.Tasks;

/// <summary>
/// A queue backend: the producer side (<see cref="ITaskQueue"/>), a consumer loop the <see cref="TaskWorker"/> runs,
/// and the dead-letter operations of the admin API. Every implementation passes the same contract tests.
/// </summary>
public interface ITaskTransport : ITaskQueue
{
    /// <summary><c>database</c> or <c>rabbitmq</c>.</summary>
    string Name { get; }

    /// <summary>
    /// Receives deliveries from <c>agent.tasks</c> and <c>system.events</c>, at most <c>Concurrency</c> at once, and
    /// passes each to <paramref name="dispatch"/> until <paramref name="stop"/> fires; then waits up to
    /// <c>ShutdownGrace</c> for the deliveries in flight and abandons the rest unacknowledged (they are delivered again).
    /// </summary>
    Task ConsumeAsync(Func<TaskDelivery, CancellationToken, Task> dispatch, CancellationToken stop);

    Task<TaskQueueStats> GetStatsAsync(CancellationToken ct);

    Task<IReadOnlyList<DeadLetter>> ListDeadAsync(int limit, CancellationToken ct);

    /// <summary>Moves a dead letter back to its queue with a fresh attempt count; false when no dead letter has that id.</summary>
    Task<bool> RequeueDeadAsync(Guid id, CancellationToken ct);

    /// <summary>Deletes a dead letter for good; false when no dead letter has that id.</summary>
    Task<bool> DeleteDeadAsync(Guid id, CancellationToken ct);
}

/// <summary>A message handed to the worker; exactly one of the settling methods should be called.</summary>
public abstract class TaskDelivery
{
    public abstract TaskMessage Message { get; }

    /// <summary><see cref="TaskQueues.Tasks"/> or <see cref="TaskQueues.Events"/>.</summary>
    public abstract string Queue { get; }

    /// <summary>Done: the message is removed (database: marked done).</summary>
    public abstract Task AckAsync();

    /// <summary>Delivers it again after <paramref name="delay"/> with the attempt number raised.</summary>
    public abstract Task RetryAsync(TimeSpan delay, string error);

    /// <summary>Moves it to the dead letters with <paramref name="error"/>.</summary>
    public abstract Task DeadLetterAsync(string error);

    /// <summary>Hands it back undone at shutdown, without counting the attempt.</summary>
    public abstract Task ReleaseAsync();
}

/// <param name="Transport">database | rabbitmq.</param>
/// <param name="Counts">Messages by state. Database: queued, leased, done, dead. RabbitMQ: queued (ready on agent.tasks and system.events) and dead (both dead-letter queues); unacknowledged and retrying messages are not counted.</param>
/// <param name="Queues">Per-queue detail (RabbitMQ: ready messages and consumers of each declared queue).</param>
public sealed record TaskQueueStats(string Transport, IReadOnlyDictionary<string, long> Counts, IReadOnlyList<QueueInfo> Queues);

public sealed record QueueInfo(string Name, long Messages, long? Consumers);

public sealed record DeadLetter(Guid Id, string Queue, string Kind, string Payload, int Attempts, string? Error, DateTimeOffset EnqueuedAt, DateTimeOffset? FailedAt);

/// <summary>Wakes database consumers in this process the moment something is enqueued (other nodes poll).</summary>
public sealed class TaskSignal
{
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Take this before looking at the queue, then wait on it, so a pulse in between is not missed.</summary>
    public Task Current => Volatile.Read(ref _next).Task;

    public void Pulse() => Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
}

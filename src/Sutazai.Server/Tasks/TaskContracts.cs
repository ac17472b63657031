namespace Sutazai.Server.Tasks;

/// <summary>One delivery of a task (or, for <see cref="ISystemEventHandler"/>, an event).</summary>
/// <param name="Id">Stable across retries and redeliveries: the key an idempotent handler deduplicates on.</param>
/// <param name="Kind">The task kind; for events, the routing key.</param>
/// <param name="Payload">JSON text.</param>
/// <param name="Attempt">1 on the first delivery, 2 on the first retry, and so on.</param>
/// <param name="EnqueuedAt">When the producer enqueued it.</param>
public sealed record TaskMessage(Guid Id, string Kind, string Payload, int Attempt, DateTimeOffset EnqueuedAt);

/// <summary>Producers enqueue durable tasks and publish events; the configured transport carries them.</summary>
public interface ITaskQueue
{
    /// <summary>Stores a task on <c>agent.tasks</c> durably before returning its id. <paramref name="payload"/> is JSON text.</summary>
    Task<Guid> EnqueueAsync(string kind, string payload, CancellationToken ct = default);

    /// <summary>Publishes an event on the <c>system.events</c> topic (routing keys like <c>agent.run.completed</c>).</summary>
    Task PublishEventAsync(string routingKey, string payload, CancellationToken ct = default);
}

/// <summary>
/// Consumes tasks of one <see cref="Kind"/>. Register it in DI (<c>services.AddTaskHandler&lt;T&gt;()</c>); the worker
/// resolves handlers in a fresh scope per delivery, so a handler may take scoped services such as the DbContext.
/// <para>
/// Delivery is <b>at-least-once</b>: a task can arrive again after a worker crashed, lost its lease or its broker
/// connection between doing the work and acknowledging it. Handlers MUST be idempotent — key every side effect on
/// <see cref="TaskMessage.Id"/> (an insert that a unique key rejects the second time, a status check before acting,
/// a conditional UPDATE), so a repeated delivery changes nothing.
/// </para>
/// Returning acknowledges the task. Throwing retries it with exponential backoff; after
/// <c>Sutazai:Tasks:MaxAttempts</c> failures it is dead-lettered (visible and requeueable at /api/v1/admin/tasks).
/// An <see cref="OperationCanceledException"/> caused by shutdown hands the task back without counting the attempt.
/// </summary>
public interface ITaskHandler
{
    string Kind { get; }

    Task HandleAsync(TaskMessage message, CancellationToken ct);
}

/// <summary>
/// Consumes events from <c>system.events</c> whose routing key matches <see cref="Pattern"/> (AMQP topic syntax:
/// <c>*</c> is one dot-separated word, <c>#</c> zero or more). Each event is handled by one node (competing
/// consumers), at-least-once, with the same retry and dead-letter rules as tasks; the same idempotency rule applies.
/// </summary>
public interface ISystemEventHandler
{
    string Pattern { get; }

    Task HandleAsync(TaskMessage message, CancellationToken ct);
}

/// <summary>The original SutazAI's queue names; the database transport uses them as its logical queues.</summary>
public static class TaskQueues
{
    public const string Tasks = "agent.tasks";
    public const string Results = "agent.results";
    public const string Events = "system.events";

    public static string DeadLetter(string queue) => queue + ".dead";
}

public static class TopicPattern
{
    /// <summary>AMQP topic matching: words split on '.', <c>*</c> matches one word, <c>#</c> zero or more.</summary>
    public static bool Matches(string pattern, string routingKey) =>
        Match(pattern.Split('.'), 0, routingKey.Length == 0 ? [] : routingKey.Split('.'), 0);

    private static bool Match(string[] pattern, int p, string[] key, int k)
    {
        if (p == pattern.Length) return k == key.Length;
        if (pattern[p] == "#")
        {
            for (var skip = k; skip <= key.Length; skip++)
                if (Match(pattern, p + 1, key, skip)) return true;
            return false;
        }
        if (k == key.Length) return false;
        return (pattern[p] == "*" || string.Equals(pattern[p], key[k], StringComparison.Ordinal)) && Match(pattern, p + 1, key, k + 1);
    }
}

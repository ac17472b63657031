using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Server.Tasks;

namespace Sutazai.Server.Tests.Tasks;

/// <summary>What the test handlers saw, shared by every app of one test (an in-process stand-in for a side-effect table).</summary>
public sealed class TaskProbe
{
    public sealed record Delivery(string Node, int Attempt, DateTimeOffset At);

    public ConcurrentDictionary<Guid, ConcurrentQueue<Delivery>> Deliveries { get; } = new();

    /// <summary>The idempotent side effect: one entry per task id, whoever inserts first wins.</summary>
    public ConcurrentDictionary<Guid, string> Effects { get; } = new();

    public ConcurrentDictionary<Guid, TaskMessage> Messages { get; } = new();

    public ConcurrentQueue<TaskMessage> Events { get; } = new();

    /// <summary>Tasks whose "test.fail" handler should now succeed.</summary>
    public ConcurrentDictionary<Guid, bool> Healed { get; } = new();

    /// <summary>Completed when a "test.hang" handler is stuck; never released (the worker holding it is "crashed").</summary>
    public TaskCompletionSource<string> HangStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private readonly TaskCompletionSource _neverReleased = new();

    public Task Hang => _neverReleased.Task;

    public int Record(string node, TaskMessage message)
    {
        Messages[message.Id] = message;
        var list = Deliveries.GetOrAdd(message.Id, _ => new ConcurrentQueue<Delivery>());
        list.Enqueue(new Delivery(node, message.Attempt, DateTimeOffset.UtcNow));
        return list.Count;
    }

    public IReadOnlyList<int> AttemptsOf(Guid id) =>
        Deliveries.TryGetValue(id, out var list) ? list.Select(d => d.Attempt).ToList() : [];

    public static async Task WaitUntilAsync(Func<bool> condition, string what, int timeoutMs = 30_000)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out after {timeoutMs} ms waiting for {what}.");
            await Task.Delay(20);
        }
    }

    /// <summary>Registers the probe and the test handlers in an app, labelled with <paramref name="node"/>.</summary>
    public Action<IServiceCollection> Register(string node) => services =>
    {
        services.AddSingleton(this);
        services.AddSingleton(new NodeLabel(node));
        services.AddTaskHandler<OkHandler>();
        services.AddTaskHandler<FlakyHandler>();
        services.AddTaskHandler<FailingHandler>();
        services.AddTaskHandler<HangHandler>();
        services.AddTaskHandler<SlowHandler>();
        services.AddSystemEventHandler<TestEventHandler>();
    };
}

public sealed record NodeLabel(string Name);

/// <summary>Succeeds at once.</summary>
public sealed class OkHandler(TaskProbe probe, NodeLabel node) : ITaskHandler
{
    public string Kind => "test.ok";

    public Task HandleAsync(TaskMessage message, CancellationToken ct)
    {
        probe.Record(node.Name, message);
        probe.Effects.TryAdd(message.Id, node.Name);
        return Task.CompletedTask;
    }
}

/// <summary>Throws on attempts 1 and 2, succeeds on 3.</summary>
public sealed class FlakyHandler(TaskProbe probe, NodeLabel node) : ITaskHandler
{
    public string Kind => "test.flaky";

    public Task HandleAsync(TaskMessage message, CancellationToken ct)
    {
        probe.Record(node.Name, message);
        if (message.Attempt < 3) throw new InvalidOperationException($"flaky attempt {message.Attempt}");
        probe.Effects.TryAdd(message.Id, node.Name);
        return Task.CompletedTask;
    }
}

/// <summary>Always throws, until the test marks the task healed.</summary>
public sealed class FailingHandler(TaskProbe probe, NodeLabel node) : ITaskHandler
{
    public string Kind => "test.fail";

    public Task HandleAsync(TaskMessage message, CancellationToken ct)
    {
        probe.Record(node.Name, message);
        if (!probe.Healed.ContainsKey(message.Id)) throw new InvalidOperationException("always fails");
        probe.Effects.TryAdd(message.Id, node.Name);
        return Task.CompletedTask;
    }
}

/// <summary>The first delivery hangs for ever, ignoring cancellation (a stuck or crashed worker); later ones succeed.</summary>
public sealed class HangHandler(TaskProbe probe, NodeLabel node) : ITaskHandler
{
    public string Kind => "test.hang";

    public async Task HandleAsync(TaskMessage message, CancellationToken ct)
    {
        if (probe.Record(node.Name, message) == 1)
        {
            probe.HangStarted.TrySetResult(node.Name);
            await probe.Hang;
        }
        probe.Effects.TryAdd(message.Id, node.Name);
    }
}

/// <summary>Takes a few milliseconds, so two workers share a batch.</summary>
public sealed class SlowHandler(TaskProbe probe, NodeLabel node) : ITaskHandler
{
    public string Kind => "test.slow";

    public async Task HandleAsync(TaskMessage message, CancellationToken ct)
    {
        probe.Record(node.Name, message);
        await Task.Delay(15, ct);
        probe.Effects.TryAdd(message.Id, node.Name);
    }
}

public sealed class TestEventHandler(TaskProbe probe) : ISystemEventHandler
{
    public string Pattern => "test.#";

    public Task HandleAsync(TaskMessage message, CancellationToken ct)
    {
        probe.Events.Enqueue(message);
        return Task.CompletedTask;
    }
}

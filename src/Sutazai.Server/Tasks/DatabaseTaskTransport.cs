using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Data.Entities;

namespace Sutazai.Server.Tasks;

/// <summary>
/// The embedded durable queue: rows of <c>task_queue</c> in the relational store (SQLite or PostgreSQL). A worker
/// claims a row with one conditional UPDATE (claimable = queued and due, or leased with an expired lease) that sets
/// its lease; only one of several racing workers changes the row. While a handler runs its lease is renewed; a worker
/// that dies stops renewing, the lease runs out and another worker claims the row again (attempt + 1). Every settling
/// UPDATE checks the lease owner, so a worker that lost its lease cannot overwrite the new owner's result.
/// </summary>
public sealed class DatabaseTaskTransport(
    IServiceScopeFactory scopes,
    TaskSignal signal,
    IOptions<TaskOptions> options,
    TimeProvider time,
    ILogger<DatabaseTaskTransport> logger) : ITaskTransport
{
    private const int CandidateBatch = 8;
    private static readonly TimeSpan MaintenanceInterval = TimeSpan.FromSeconds(30);

    private TaskOptions Options => options.Value;

    public string Name => "database";

    public Task<Guid> EnqueueAsync(string kind, string payload, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(kind);
        ArgumentNullException.ThrowIfNull(payload);
        return InsertAsync(TaskQueues.Tasks, kind, payload, ct);
    }

    public async Task PublishEventAsync(string routingKey, string payload, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(routingKey);
        ArgumentNullException.ThrowIfNull(payload);
        await InsertAsync(TaskQueues.Events, routingKey, payload, ct);
    }

    private async Task<Guid> InsertAsync(string queue, string kind, string payload, CancellationToken ct)
    {
        var now = Now;
        var row = new QueuedTask
        {
            Id = Guid.CreateVersion7(),
            Queue = queue,
            Kind = kind,
            Payload = payload,
            Status = QueuedTaskStatus.Queued,
            Attempt = 0,
            AvailableAt = now,
            CreatedAt = now,
            UpdatedAt = now,
        };
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            db.TaskQueue.Add(row);
            await db.SaveChangesAsync(ct);
        }
        signal.Pulse();
        return row.Id;
    }

    public async Task ConsumeAsync(Func<TaskDelivery, CancellationToken, Task> dispatch, CancellationToken stop)
    {
        var owner = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..8]}";
        var slots = new SemaphoreSlim(Options.Concurrency); // not disposed: an abandoned handler may still release it later
        var inFlight = new ConcurrentDictionary<Guid, Task>();
        using var abandon = new CancellationTokenSource();
        var nextMaintenance = DateTime.MinValue;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                await slots.WaitAsync(stop);
                var wake = signal.Current;
                QueuedTask? claimed;
                try
                {
                    if (Now >= nextMaintenance)
                    {
                        await PurgeDoneAsync(stop);
                        nextMaintenance = Now + MaintenanceInterval;
                    }
                    claimed = await ClaimAsync(owner, stop);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !stop.IsCancellationRequested)
                {
                    slots.Release();
                    logger.LogError(ex, "Claiming a task from the database queue failed; retrying in {Interval}", Options.PollInterval);
                    await Task.Delay(Options.PollInterval, time, stop);
                    continue;
                }
                if (claimed is null)
                {
                    slots.Release();
                    await WaitQuietlyAsync(wake, Options.PollInterval, stop);
                    continue;
                }
                var delivery = new Delivery(this, claimed, owner);
                inFlight[claimed.Id] = RunAsync(delivery, dispatch, slots, inFlight, stop, abandon.Token);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Shutting down: settle what is in flight below.
        }
        var pending = inFlight.Values.ToArray();
        if (pending.Length == 0) return;
        try
        {
            await Task.WhenAll(pending).WaitAsync(Options.ShutdownGrace, time, CancellationToken.None);
        }
        catch (TimeoutException)
        {
            logger.LogWarning("{Count} task(s) still running after the {Grace} shutdown grace were abandoned; their leases run out and another worker takes them",
                inFlight.Count, Options.ShutdownGrace);
        }
        await abandon.CancelAsync();
    }

    private async Task RunAsync(Delivery delivery, Func<TaskDelivery, CancellationToken, Task> dispatch, SemaphoreSlim slots,
        ConcurrentDictionary<Guid, Task> inFlight, CancellationToken stop, CancellationToken abandon)
    {
        await Task.Yield();
        using var renewing = CancellationTokenSource.CreateLinkedTokenSource(abandon);
        var heartbeat = RenewLeaseAsync(delivery, renewing.Token);
        try
        {
            await dispatch(delivery, stop);
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "Settling task {Id} ({Kind}) failed; it is delivered again when its lease runs out", delivery.Message.Id, delivery.Message.Kind);
        }
        finally
        {
            await renewing.CancelAsync();
            await heartbeat;
            inFlight.TryRemove(delivery.Message.Id, out _);
            slots.Release();
        }
    }

    private async Task RenewLeaseAsync(Delivery delivery, CancellationToken ct)
    {
        var every = Options.LeaseDuration / 3;
        try
        {
            while (true)
            {
                await Task.Delay(every, time, ct);
                var renewed = await SettleAsync(delivery, q => q.SetProperty(t => t.LeaseUntil, Now + Options.LeaseDuration).SetProperty(t => t.UpdatedAt, Now), ct);
                if (!renewed)
                {
                    logger.LogWarning("Task {Id} ({Kind}) lost its lease to another worker; its result here will be discarded", delivery.Message.Id, delivery.Message.Kind);
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The handler finished, or this worker abandoned the task.
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "Renewing the lease of task {Id} failed; another worker may take it when the lease runs out", delivery.Message.Id);
        }
    }

    private async Task<QueuedTask?> ClaimAsync(string owner, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var now = Now;
        var candidates = await Claimable(db.TaskQueue, now).OrderBy(t => t.AvailableAt)
            .Select(t => t.Id).Take(CandidateBatch).ToListAsync(ct);
        var until = now + Options.LeaseDuration;
        foreach (var id in candidates)
        {
            // The condition is checked again inside the UPDATE: of several workers racing for the row, one changes it.
            var claimed = await Claimable(db.TaskQueue.Where(t => t.Id == id), now).ExecuteUpdateAsync(s => s
                .SetProperty(t => t.Status, QueuedTaskStatus.Leased)
                .SetProperty(t => t.LeaseOwner, owner)
                .SetProperty(t => t.LeaseUntil, until)
                .SetProperty(t => t.Attempt, t => t.Attempt + 1)
                .SetProperty(t => t.UpdatedAt, now), ct);
            if (claimed == 1)
                return await db.TaskQueue.AsNoTracking().FirstAsync(t => t.Id == id, ct);
        }
        return null;
    }

    private static IQueryable<QueuedTask> Claimable(IQueryable<QueuedTask> rows, DateTime now) => rows.Where(t =>
        (t.Status == QueuedTaskStatus.Queued && t.AvailableAt <= now) ||
        (t.Status == QueuedTaskStatus.Leased && t.LeaseUntil < now));

    private async Task PurgeDoneAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var before = Now - Options.DoneRetention;
        await db.TaskQueue.Where(t => t.Status == QueuedTaskStatus.Done && t.UpdatedAt < before).ExecuteDeleteAsync(ct);
    }

    /// <summary>Applies an update to the row only while this delivery still holds its lease.</summary>
    private async Task<bool> SettleAsync(Delivery delivery, Action<Microsoft.EntityFrameworkCore.Query.UpdateSettersBuilder<QueuedTask>> set, CancellationToken ct = default)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var id = delivery.Message.Id;
        var owner = delivery.Owner;
        var changed = await db.TaskQueue
            .Where(t => t.Id == id && t.Status == QueuedTaskStatus.Leased && t.LeaseOwner == owner)
            .ExecuteUpdateAsync(set, ct);
        return changed == 1;
    }

    private async Task SettleOrWarnAsync(Delivery delivery, string what, Action<Microsoft.EntityFrameworkCore.Query.UpdateSettersBuilder<QueuedTask>> set)
    {
        if (!await SettleAsync(delivery, set))
            logger.LogWarning("Task {Id} ({Kind}) could not be marked {What}: this worker no longer holds its lease (another worker redelivered it)",
                delivery.Message.Id, delivery.Message.Kind, what);
        else if (what != QueuedTaskStatus.Done)
            signal.Pulse();
    }

    public async Task<TaskQueueStats> GetStatsAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var rows = await db.TaskQueue.GroupBy(t => new { t.Queue, t.Status })
            .Select(g => new { g.Key.Queue, g.Key.Status, Count = g.LongCount() }).ToListAsync(ct);
        var counts = new Dictionary<string, long>
        {
            [QueuedTaskStatus.Queued] = 0,
            [QueuedTaskStatus.Leased] = 0,
            [QueuedTaskStatus.Done] = 0,
            [QueuedTaskStatus.Dead] = 0,
        };
        foreach (var row in rows) counts[row.Status] = counts.GetValueOrDefault(row.Status) + row.Count;
        var queues = rows.Where(r => r.Status is QueuedTaskStatus.Queued or QueuedTaskStatus.Leased).GroupBy(r => r.Queue)
            .Select(g => new QueueInfo(g.Key, g.Sum(r => r.Count), null))
            .Concat(rows.Where(r => r.Status == QueuedTaskStatus.Dead).GroupBy(r => r.Queue)
                .Select(g => new QueueInfo(TaskQueues.DeadLetter(g.Key), g.Sum(r => r.Count), null)))
            .OrderBy(q => q.Name, StringComparer.Ordinal).ToList();
        return new TaskQueueStats(Name, counts, queues);
    }

    public async Task<IReadOnlyList<DeadLetter>> ListDeadAsync(int limit, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var rows = await db.TaskQueue.AsNoTracking().Where(t => t.Status == QueuedTaskStatus.Dead)
            .OrderByDescending(t => t.UpdatedAt).ThenBy(t => t.Id).Take(limit).ToListAsync(ct);
        return rows.Select(t => new DeadLetter(t.Id, t.Queue, t.Kind, t.Payload, t.Attempt, t.LastError,
            new DateTimeOffset(t.CreatedAt, TimeSpan.Zero), new DateTimeOffset(t.UpdatedAt, TimeSpan.Zero))).ToList();
    }

    public async Task<bool> RequeueDeadAsync(Guid id, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var now = Now;
        var changed = await db.TaskQueue.Where(t => t.Id == id && t.Status == QueuedTaskStatus.Dead).ExecuteUpdateAsync(s => s
            .SetProperty(t => t.Status, QueuedTaskStatus.Queued)
            .SetProperty(t => t.Attempt, 0)
            .SetProperty(t => t.AvailableAt, now)
            .SetProperty(t => t.LeaseOwner, (string?)null)
            .SetProperty(t => t.LeaseUntil, (DateTime?)null)
            .SetProperty(t => t.UpdatedAt, now), ct);
        if (changed == 1) signal.Pulse();
        return changed == 1;
    }

    public async Task<bool> DeleteDeadAsync(Guid id, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        return await db.TaskQueue.Where(t => t.Id == id && t.Status == QueuedTaskStatus.Dead).ExecuteDeleteAsync(ct) == 1;
    }

    private DateTime Now => time.GetUtcNow().UtcDateTime;

    private static async Task WaitQuietlyAsync(Task wake, TimeSpan timeout, CancellationToken stop)
    {
        try
        {
            await wake.WaitAsync(timeout, stop);
        }
        catch (TimeoutException)
        {
            // Nothing enqueued here: look again, for rows enqueued by other nodes or retries that became due.
        }
    }

    private static string Truncate(string error) => error.Length <= 4000 ? error : error[..3997] + "...";

    private sealed class Delivery(DatabaseTaskTransport transport, QueuedTask row, string owner) : TaskDelivery
    {
        public string Owner => owner;

        public override TaskMessage Message { get; } =
            new(row.Id, row.Kind, row.Payload, row.Attempt, new DateTimeOffset(row.CreatedAt, TimeSpan.Zero));

        public override string Queue => row.Queue;

        public override Task AckAsync() => transport.SettleOrWarnAsync(this, QueuedTaskStatus.Done, s => s
            .SetProperty(t => t.Status, QueuedTaskStatus.Done)
            .SetProperty(t => t.LeaseOwner, (string?)null)
            .SetProperty(t => t.LeaseUntil, (DateTime?)null)
            .SetProperty(t => t.UpdatedAt, transport.Now));

        public override Task RetryAsync(TimeSpan delay, string error) => transport.SettleOrWarnAsync(this, "for retry", s => s
            .SetProperty(t => t.Status, QueuedTaskStatus.Queued)
            .SetProperty(t => t.AvailableAt, transport.Now + delay)
            .SetProperty(t => t.LastError, Truncate(error))
            .SetProperty(t => t.LeaseOwner, (string?)null)
            .SetProperty(t => t.LeaseUntil, (DateTime?)null)
            .SetProperty(t => t.UpdatedAt, transport.Now));

        public override Task DeadLetterAsync(string error) => transport.SettleOrWarnAsync(this, QueuedTaskStatus.Dead, s => s
            .SetProperty(t => t.Status, QueuedTaskStatus.Dead)
            .SetProperty(t => t.LastError, Truncate(error))
            .SetProperty(t => t.LeaseOwner, (string?)null)
            .SetProperty(t => t.LeaseUntil, (DateTime?)null)
            .SetProperty(t => t.UpdatedAt, transport.Now));

        public override Task ReleaseAsync() => transport.SettleOrWarnAsync(this, "released", s => s
            .SetProperty(t => t.Status, QueuedTaskStatus.Queued)
            .SetProperty(t => t.Attempt, t => t.Attempt - 1)
            .SetProperty(t => t.AvailableAt, transport.Now)
            .SetProperty(t => t.LeaseOwner, (string?)null)
            .SetProperty(t => t.LeaseUntil, (DateTime?)null)
            .SetProperty(t => t.UpdatedAt, transport.Now));
    }
}

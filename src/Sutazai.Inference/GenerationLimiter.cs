using System.Collections.Concurrent;
namespace Sutazai.Inference;

/// <summary>
/// How many generations each user has running on this node, capped by
/// <c>Sutazai:RateLimits:ConcurrentGenerationsPerUser</c>. Every door that starts one (generate, /v1, conversation
/// replies, sockets) takes a slot with <see cref="TryAcquire"/> and answers 429 when none is free; an agent's model step
/// waits for one with <see cref="AcquireAsync"/> (a run in the background should not fail because its owner is busy).
/// One user's load never takes another user's slots. <paramref name="limit"/> is read on every acquire, so a reloaded
/// setting applies at once.
/// </summary>
public sealed class GenerationLimiter(Func<int> limit)
{
    /// <summary>What 429 answers put in Retry-After: a slot frees when one of the user's generations ends.</summary>
    public const int RetryAfterSeconds = 2;

    private readonly ConcurrentDictionary<Guid, int> _running = new();
    private readonly Lock _gate = new();
    private readonly ConcurrentDictionary<Guid, SemaphoreSlim> _freed = new();

    public int Limit => limit();

    public int Running(Guid userId) => _running.GetValueOrDefault(userId);

    public IReadOnlyDictionary<Guid, int> RunningByUser() => _running.Where(p => p.Value > 0).ToDictionary(p => p.Key, p => p.Value);

    public string LimitDetail => $"You already have {Limit} generation(s) running, the most one user may run at once. Wait for one to finish or stop it.";

    /// <summary>A slot for one generation, released by disposing it; null when the user already runs <see cref="Limit"/>.</summary>
    public IDisposable? TryAcquire(Guid userId)
    {
        lock (_gate)
        {
            var running = _running.GetValueOrDefault(userId);
            if (running >= Limit) return null;
            _running[userId] = running + 1;
        }
        return new Lease(this, userId);
    }

    /// <summary>Waits for a free slot of the user's (checked again each time one of their generations ends).</summary>
    public async Task<IDisposable> AcquireAsync(Guid userId, CancellationToken ct)
    {
        while (true)
        {
            var freed = _freed.GetOrAdd(userId, _ => new SemaphoreSlim(0));
            if (TryAcquire(userId) is { } lease) return lease;
            // A release between the failed try and this wait still signals the semaphore, so no wake-up is lost;
            // the timeout covers a limit raised at run time.
            await freed.WaitAsync(TimeSpan.FromSeconds(5), ct);
        }
    }

    private void Release(Guid userId)
    {
        lock (_gate)
        {
            var running = _running.GetValueOrDefault(userId) - 1;
            if (running <= 0) _running.TryRemove(userId, out _);
            else _running[userId] = running;
        }
        if (_freed.TryGetValue(userId, out var freed) && freed.CurrentCount == 0) freed.Release();
    }

    private sealed class Lease(GenerationLimiter owner, Guid userId) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) owner.Release(userId);
        }
    }
}

namespace Sutazai.Inference.Pull;

/// <summary>One async mutex per key; entries live only while someone holds or waits for them.</summary>
internal sealed class KeyedAsyncLock(StringComparer comparer)
{
    private readonly Dictionary<string, Entry> _entries = new(comparer);

    public async Task<IDisposable> AcquireAsync(string key, CancellationToken cancellationToken)
    {
        Entry entry;
        lock (_entries)
        {
            if (!_entries.TryGetValue(key, out entry!))
            {
                entry = new Entry();
                _entries.Add(key, entry);
            }

            entry.References++;
        }

        try
        {
            await entry.Gate.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            Release(key, entry, holdsGate: false);
            throw;
        }

        return new Releaser(this, key, entry);
    }

    /// <summary>How many callers hold or wait for <paramref name="key"/>.</summary>
    public int CountFor(string key)
    {
        lock (_entries)
        {
            return _entries.TryGetValue(key, out var entry) ? entry.References : 0;
        }
    }

    private void Release(string key, Entry entry, bool holdsGate)
    {
        if (holdsGate)
        {
            entry.Gate.Release();
        }

        lock (_entries)
        {
            if (--entry.References == 0)
            {
                _entries.Remove(key);
            }
        }
    }

    private sealed class Entry
    {
        public SemaphoreSlim Gate { get; } = new(1, 1);

        public int References { get; set; }
    }

    private sealed class Releaser(KeyedAsyncLock owner, string key, Entry entry) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.Release(key, entry, holdsGate: true);
            }
        }
    }
}

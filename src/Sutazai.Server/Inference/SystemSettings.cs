using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Inference;

namespace Sutazai.Server.Inference;

/// <summary>
/// Settings an administrator changes at run time (default model, Ollama address), stored as rows of
/// <c>system_flags</c> (value at most <see cref="MaxValueLength"/> characters). Reads are cached for
/// <see cref="CacheLifetime"/> so every generation does not query the database; a write on this node is seen at once,
/// other nodes drop their cached value when the <c>settings.changed</c> event reaches them (Redis), and at the latest
/// within the cache lifetime.
/// </summary>
public sealed class SystemSettings(IServiceScopeFactory scopes, TimeProvider time)
{
    public const string DefaultModelKey = "setting:default-model";
    public const string OllamaUrlKey = "setting:ollama-url";
    public const int MaxValueLength = 256;
    public static readonly TimeSpan CacheLifetime = TimeSpan.FromSeconds(5);

    private readonly ConcurrentDictionary<string, (string? Value, DateTimeOffset At)> _cache = new();

    public async ValueTask<string?> GetAsync(string key, CancellationToken ct)
    {
        if (_cache.TryGetValue(key, out var cached) && time.GetUtcNow() - cached.At < CacheLifetime) return cached.Value;
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var value = await db.SystemFlags.AsNoTracking().Where(f => f.Key == key).Select(f => f.Value).FirstOrDefaultAsync(ct);
        _cache[key] = (value, time.GetUtcNow());
        return value;
    }

    /// <summary>Drops the cached value, so the next read goes to the database (another node changed it).</summary>
    public void Forget(string key) => _cache.TryRemove(key, out _);

    /// <summary>Raised after a value is stored (the host tells the other nodes).</summary>
    public event Action<string>? Changed;

    public async Task SetAsync(string key, string value, CancellationToken ct)
    {
        if (value.Length > MaxValueLength) throw new ArgumentException($"A system setting is at most {MaxValueLength} characters.", nameof(value));
        for (var attempt = 0; ; attempt++)
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var row = await db.SystemFlags.FirstOrDefaultAsync(f => f.Key == key, ct);
            if (row is null) db.SystemFlags.Add(new SystemFlag { Key = key, Value = value, CreatedAt = time.GetUtcNow().UtcDateTime });
            else row.Value = value;
            try
            {
                await db.SaveChangesAsync(ct);
                break;
            }
            catch (DbUpdateException) when (row is null && attempt == 0)
            {
                // another request inserted the row first: update it instead
            }
        }
        _cache[key] = (value, time.GetUtcNow());
        Changed?.Invoke(key);
    }
}

/// <summary>The default model chosen in the web UI or with PUT /api/v1/models/default.</summary>
public sealed class StoredDefaultModel(SystemSettings settings) : IDefaultModelStore
{
    public ValueTask<string?> GetAsync(CancellationToken ct) => settings.GetAsync(SystemSettings.DefaultModelKey, ct);

    public Task SetAsync(string model, CancellationToken ct) => settings.SetAsync(SystemSettings.DefaultModelKey, model, ct);
}

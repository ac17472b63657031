using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.EntityFrameworkCore;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Knowledge.Vectors;
using Sutazai.Server.Knowledge;

namespace Sutazai.Server.Vectors;

/// <summary>
/// The open vector index of each raw-vector collection, opened on first use and kept for the life of the server. An
/// embedded (USearch) index found missing or damaged is rebuilt from the relational copy of the vectors.
/// </summary>
public sealed class RawVectorIndexes(VectorStores stores, IServiceScopeFactory scopes) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<Guid, Lazy<Task<IVectorStore>>> _open = new();

    public async Task<IVectorStore> GetAsync(VectorCollection collection, CancellationToken ct)
    {
        var lazy = _open.GetOrAdd(collection.Id, _ => new Lazy<Task<IVectorStore>>(() => OpenAsync(collection.Id, collection.Dimensions)));
        try
        {
            return await lazy.Value.WaitAsync(ct);
        }
        catch (Exception) when (lazy.Value.IsFaulted)
        {
            // Forget a failed open so the next request tries again instead of seeing the same failure forever.
            _open.TryRemove(KeyValuePair.Create(collection.Id, lazy));
            throw;
        }
    }

    private async Task<IVectorStore> OpenAsync(Guid collectionId, int dimensions)
    {
        var store = stores.ForRawCollection(collectionId);
        await store.EnsureCollectionAsync(dimensions);
        if (store is USearchVectorStore { NeedsRebuild: true } usearch)
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var ownerId = await db.VectorCollections.Where(c => c.Id == collectionId).Select(c => c.OwnerId).SingleAsync();
            var rows = await db.VectorPoints.AsNoTracking().Where(p => p.CollectionId == collectionId)
                .Select(p => new { p.Id, p.Vector }).ToListAsync();
            await usearch.RebuildAsync(rows.Select(r => new VectorRecord(r.Id, ownerId, collectionId, collectionId, RawVectors.FromBytes(r.Vector))));
        }

        return store;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var lazy in _open.Values)
        {
            if (!lazy.IsValueCreated || !lazy.Value.IsCompletedSuccessfully) continue;
            switch (await lazy.Value)
            {
                case IAsyncDisposable a: await a.DisposeAsync(); break;
                case IDisposable d: d.Dispose(); break;
            }
        }
        _open.Clear();
    }
}

/// <summary>How raw vectors are stored relationally: little-endian float32.</summary>
public static class RawVectors
{
    public static byte[] ToBytes(float[] vector) => MemoryMarshal.AsBytes(vector.AsSpan()).ToArray();

    public static float[] FromBytes(byte[] bytes) => MemoryMarshal.Cast<byte, float>(bytes).ToArray();
}

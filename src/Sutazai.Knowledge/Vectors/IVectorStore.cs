namespace Sutazai.Knowledge.Vectors;

/// <summary>One chunk's embedding, with the ids that scope who may find it.</summary>
public sealed record VectorRecord(Guid Id, Guid OwnerId, Guid? CollectionId, Guid DocumentId, ReadOnlyMemory<float> Vector);

/// <summary>
/// What a search may see: vectors of one of <paramref name="OwnerIds"/> and, when <paramref name="CollectionIds"/> is
/// not null, only those in one of these collections. Stores apply it before ranking.
/// </summary>
public sealed record VectorFilter(IReadOnlyCollection<Guid> OwnerIds, IReadOnlyCollection<Guid>? CollectionIds = null)
{
    public static VectorFilter Owner(Guid ownerId, params Guid[] collectionIds) =>
        new([ownerId], collectionIds.Length == 0 ? null : collectionIds);
}

/// <summary>A search result: cosine similarity, higher is nearer (1 = same direction).</summary>
public sealed record VectorHit(Guid Id, Guid DocumentId, float Score);

/// <summary>
/// A vector index for one embedding space (one model, one dimension count). The owner/collection filter is applied
/// inside the search, so a caller always gets its own k nearest vectors whatever other owners hold.
/// </summary>
public interface IVectorStore
{
    /// <summary>The engine's name ("usearch", "pgvector").</summary>
    string Name { get; }

    /// <summary>Creates or opens the store for vectors of <paramref name="dimensions"/>; throws
    /// <see cref="VectorDimensionMismatchException"/> when it already holds another dimension count.</summary>
    Task EnsureCollectionAsync(int dimensions, CancellationToken cancellationToken = default);

    /// <summary>Adds the records, replacing any with the same id.</summary>
    Task UpsertAsync(IReadOnlyList<VectorRecord> records, CancellationToken cancellationToken = default);

    Task DeleteAsync(IReadOnlyList<Guid> ids, CancellationToken cancellationToken = default);

    Task DeleteByDocumentAsync(Guid documentId, CancellationToken cancellationToken = default);

    /// <summary>The <paramref name="k"/> vectors most similar to <paramref name="query"/> that pass
    /// <paramref name="filter"/>, best first.</summary>
    Task<IReadOnlyList<VectorHit>> SearchAsync(
        ReadOnlyMemory<float> query, int k, VectorFilter filter, CancellationToken cancellationToken = default);
}

/// <summary>A vector's length differs from the store's dimension count.</summary>
public sealed class VectorDimensionMismatchException(int expected, int actual, string what)
    : InvalidOperationException($"{what} has {actual} dimensions but the vector store holds {expected}-dimensional vectors.")
{
    public int Expected { get; } = expected;

    public int Actual { get; } = actual;
}

internal static class VectorChecks
{
    public static void Records(IReadOnlyList<VectorRecord> records, int dimensions)
    {
        ArgumentNullException.ThrowIfNull(records);
        var seen = new HashSet<Guid>();
        foreach (var r in records)
        {
            if (r.Vector.Length != dimensions)
            {
                throw new VectorDimensionMismatchException(dimensions, r.Vector.Length, $"Vector {r.Id}");
            }

            if (!seen.Add(r.Id))
            {
                throw new ArgumentException($"Vector {r.Id} appears twice in one upsert.", nameof(records));
            }
        }
    }

    public static void Search(ReadOnlyMemory<float> query, int k, VectorFilter filter, int dimensions)
    {
        ArgumentNullException.ThrowIfNull(filter);
        ArgumentNullException.ThrowIfNull(filter.OwnerIds);
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        if (query.Length != dimensions)
        {
            throw new VectorDimensionMismatchException(dimensions, query.Length, "The query");
        }
    }

    public static float Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double dot = 0, na = 0, nb = 0;
        for (var i = 0; i < a.Length; i++)
        {
            dot += (double)a[i] * b[i];
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }

        return na == 0 || nb == 0 ? 0f : (float)(dot / Math.Sqrt(na * nb));
    }
}

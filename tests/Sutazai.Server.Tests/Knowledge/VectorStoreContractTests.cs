using Sutazai.Knowledge.Vectors;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Knowledge;

/// <summary>The behaviour every <see cref="IVectorStore"/> must have, on small hand-made 3-d vectors whose cosine
/// similarities to the query (1, 0, 0) are known exactly.</summary>
public abstract class VectorStoreContractTests : IAsyncLifetime
{
    protected const int Dims = 3;
    private static readonly float[] Query = [1, 0, 0];
    private readonly List<IVectorStore> _opened = [];

    protected readonly Guid OwnerA = Guid.NewGuid();
    protected readonly Guid OwnerB = Guid.NewGuid();
    protected readonly Guid Doc1 = Guid.NewGuid();
    protected readonly Guid Doc2 = Guid.NewGuid();
    protected readonly Guid Coll1 = Guid.NewGuid();
    protected readonly Guid Coll2 = Guid.NewGuid();

    /// <summary>A new store instance over the same backing storage on every call.</summary>
    protected abstract IVectorStore CreateStore();

    protected async Task<IVectorStore> OpenAsync(int dims = Dims)
    {
        var store = CreateStore();
        _opened.Add(store);
        await store.EnsureCollectionAsync(dims);
        return store;
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public virtual async Task DisposeAsync()
    {
        foreach (var store in _opened)
        {
            switch (store)
            {
                case IAsyncDisposable a: await a.DisposeAsync(); break;
                case IDisposable d: d.Dispose(); break;
            }
        }
    }

    protected VectorRecord A(Guid id, float x, float y, float z, Guid? collection = null, Guid? document = null) =>
        new(id, OwnerA, collection, document ?? Doc1, new[] { x, y, z });

    protected VectorRecord B(Guid id, float x, float y, float z) => new(id, OwnerB, null, Doc2, new[] { x, y, z });

    protected static void AssertHits(IReadOnlyList<VectorHit> hits, params (Guid Id, float Score)[] expected)
    {
        Assert.Equal(expected.Select(e => e.Id), hits.Select(h => h.Id));
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i].Score, hits[i].Score, 4);
        }
    }

    [Fact]
    public async Task Search_ReturnsTheExactNearestNeighboursWithCosineScores()
    {
        var store = await OpenAsync();
        Guid a1 = Guid.NewGuid(), a2 = Guid.NewGuid(), a3 = Guid.NewGuid(), a4 = Guid.NewGuid(), a5 = Guid.NewGuid();
        await store.UpsertAsync([A(a1, 0, 1, 0), A(a2, 0.8f, 0.6f, 0), A(a3, 3, 0, 0), A(a4, 0.6f, 0.8f, 0), A(a5, -1, 0, 0)]);

        var hits = await store.SearchAsync(Query, 3, VectorFilter.Owner(OwnerA));

        AssertHits(hits, (a3, 1f), (a2, 0.8f), (a4, 0.6f));
        Assert.All(hits, h => Assert.Equal(Doc1, h.DocumentId));
        var all = await store.SearchAsync(Query, 10, VectorFilter.Owner(OwnerA));
        AssertHits(all, (a3, 1f), (a2, 0.8f), (a4, 0.6f), (a1, 0f), (a5, -1f));
    }

    [Fact]
    public async Task OwnerFilter_IsAppliedBeforeTopK()
    {
        var store = await OpenAsync();
        // A holds 300 vectors, every one nearer the query than any of B's.
        var aRecords = Enumerable.Range(0, 300).Select(i => A(Guid.NewGuid(), 1, i / 500f, 0)).ToList();
        await store.UpsertAsync(aRecords);
        Guid b1 = Guid.NewGuid(), b2 = Guid.NewGuid(), b3 = Guid.NewGuid();
        await store.UpsertAsync([B(b1, 0, 1, 0), B(b2, 0.6f, 0.8f, 0), B(b3, -0.6f, 0.8f, 0)]);

        var bHits = await store.SearchAsync(Query, 3, VectorFilter.Owner(OwnerB));
        AssertHits(bHits, (b2, 0.6f), (b1, 0f), (b3, -0.6f));

        var aHits = await store.SearchAsync(Query, 50, VectorFilter.Owner(OwnerA));
        Assert.Equal(50, aHits.Count);
        Assert.Equal(aRecords.Take(50).Select(r => r.Id), aHits.Select(h => h.Id));

        var both = await store.SearchAsync(new float[] { -0.6f, 0.8f, 0 }, 2, new VectorFilter([OwnerA, OwnerB]));
        AssertHits(both, (b3, 1f), (b1, 0.8f));
        Assert.Empty(await store.SearchAsync(Query, 3, VectorFilter.Owner(Guid.NewGuid())));
    }

    [Fact]
    public async Task CollectionFilter_KeepsOnlyThoseCollections()
    {
        var store = await OpenAsync();
        Guid c1a = Guid.NewGuid(), c1b = Guid.NewGuid(), c2 = Guid.NewGuid(), none = Guid.NewGuid();
        var filler = Enumerable.Range(1, 200).Select(i => A(Guid.NewGuid(), 1, i / 1000f, 0, Coll2)).ToList();
        await store.UpsertAsync([.. filler, A(c1a, 0, 1, 0, Coll1), A(c1b, 0.8f, 0.6f, 0, Coll1), A(c2, 1, 0, 0, Coll2), A(none, 1, 0, 0)]);

        AssertHits(await store.SearchAsync(Query, 5, VectorFilter.Owner(OwnerA, Coll1)), (c1b, 0.8f), (c1a, 0f));
        var hits = await store.SearchAsync(Query, 3, new VectorFilter([OwnerA], [Coll1, Coll2]));
        Assert.Equal(3, hits.Count);
        Assert.Equal(c2, hits[0].Id);
        Assert.DoesNotContain(hits, h => h.Id == none);
        Assert.Empty(await store.SearchAsync(Query, 3, VectorFilter.Owner(OwnerB, Coll1)));
    }

    [Fact]
    public async Task Delete_ByIdAndByDocument()
    {
        var store = await OpenAsync();
        Guid a1 = Guid.NewGuid(), a2 = Guid.NewGuid(), a3 = Guid.NewGuid(), a4 = Guid.NewGuid();
        var doc3 = Guid.NewGuid();
        await store.UpsertAsync([A(a1, 1, 0, 0), A(a2, 0.8f, 0.6f, 0), A(a3, 0.6f, 0.8f, 0, document: doc3), A(a4, 0, 1, 0, document: doc3)]);

        await store.DeleteAsync([a1, Guid.NewGuid()]);
        AssertHits(await store.SearchAsync(Query, 5, VectorFilter.Owner(OwnerA)), (a2, 0.8f), (a3, 0.6f), (a4, 0f));

        await store.DeleteByDocumentAsync(doc3);
        AssertHits(await store.SearchAsync(Query, 5, VectorFilter.Owner(OwnerA)), (a2, 0.8f));

        await store.DeleteByDocumentAsync(Doc1);
        Assert.Empty(await store.SearchAsync(Query, 5, VectorFilter.Owner(OwnerA)));
    }

    [Fact]
    public async Task Upsert_SameIdReplacesVectorAndScope()
    {
        var store = await OpenAsync();
        Guid a1 = Guid.NewGuid(), a2 = Guid.NewGuid();
        await store.UpsertAsync([A(a1, 1, 0, 0), A(a2, 0.8f, 0.6f, 0)]);

        await store.UpsertAsync([A(a1, 0, 1, 0, Coll1)]);
        AssertHits(await store.SearchAsync(Query, 5, VectorFilter.Owner(OwnerA)), (a2, 0.8f), (a1, 0f));
        AssertHits(await store.SearchAsync(Query, 5, VectorFilter.Owner(OwnerA, Coll1)), (a1, 0f));

        await store.UpsertAsync([new VectorRecord(a1, OwnerB, null, Doc2, new float[] { 0.6f, 0.8f, 0 })]);
        AssertHits(await store.SearchAsync(Query, 5, VectorFilter.Owner(OwnerA)), (a2, 0.8f));
        var bHits = await store.SearchAsync(Query, 5, VectorFilter.Owner(OwnerB));
        AssertHits(bHits, (a1, 0.6f));
        Assert.Equal(Doc2, bHits[0].DocumentId);
    }

    [Fact]
    public async Task NewInstance_OverTheSameStorage_SeesTheData()
    {
        var store = await OpenAsync();
        Guid a1 = Guid.NewGuid(), a2 = Guid.NewGuid(), b1 = Guid.NewGuid();
        await store.UpsertAsync([A(a1, 1, 0, 0, Coll1), A(a2, 0.6f, 0.8f, 0), B(b1, 0.8f, 0.6f, 0)]);
        await store.DeleteAsync([a2]);

        var reopened = await OpenAsync();

        AssertHits(await reopened.SearchAsync(Query, 5, VectorFilter.Owner(OwnerA)), (a1, 1f));
        AssertHits(await reopened.SearchAsync(Query, 5, VectorFilter.Owner(OwnerA, Coll1)), (a1, 1f));
        AssertHits(await reopened.SearchAsync(Query, 5, VectorFilter.Owner(OwnerB)), (b1, 0.8f));
    }

    [Fact]
    public async Task MixedDimensions_AreRejected()
    {
        var store = await OpenAsync();
        await store.UpsertAsync([A(Guid.NewGuid(), 1, 0, 0)]);

        var upsert = await Assert.ThrowsAsync<VectorDimensionMismatchException>(() =>
            store.UpsertAsync([new VectorRecord(Guid.NewGuid(), OwnerA, null, Doc1, new float[] { 1, 0, 0, 0 })]));
        Assert.Equal((3, 4), (upsert.Expected, upsert.Actual));
        var search = await Assert.ThrowsAsync<VectorDimensionMismatchException>(() =>
            store.SearchAsync(new float[] { 1, 0 }, 1, VectorFilter.Owner(OwnerA)));
        Assert.Equal((3, 2), (search.Expected, search.Actual));
        var reopen = await Assert.ThrowsAsync<VectorDimensionMismatchException>(() => OpenAsync(384));
        Assert.Equal((3, 384), (reopen.Expected, reopen.Actual));
        Assert.Single(await store.SearchAsync(Query, 5, VectorFilter.Owner(OwnerA)));
    }
}

public sealed class USearchVectorStoreContractTests : VectorStoreContractTests
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sutazai-usearch-" + Guid.NewGuid().ToString("N"));

    // Threshold 0: collection-filtered searches take the HNSW over-fetch path (the exact scan is covered below).
    protected override IVectorStore CreateStore() => new USearchVectorStore(_dir, exactSearchThreshold: 0);

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task CollectionFilter_ExactScanPath_GivesTheSameHits()
    {
        var store = new USearchVectorStore(_dir);
        try
        {
            await store.EnsureCollectionAsync(Dims);
            Guid c1a = Guid.NewGuid(), c1b = Guid.NewGuid();
            await store.UpsertAsync([A(c1a, 0, 1, 0, Coll1), A(c1b, 0.8f, 0.6f, 0, Coll1), A(Guid.NewGuid(), 1, 0, 0, Coll2)]);
            AssertHits(await store.SearchAsync(new float[] { 1, 0, 0 }, 5, VectorFilter.Owner(OwnerA, Coll1)), (c1b, 0.8f), (c1a, 0f));
        }
        finally
        {
            store.Dispose();
        }
    }

    [Fact]
    public async Task MissingIndexFile_NeedsRebuild_ThenRebuildRestoresSearch()
    {
        var records = new List<VectorRecord>();
        Guid a1 = Guid.NewGuid(), a2 = Guid.NewGuid(), b1 = Guid.NewGuid();
        records.AddRange([A(a1, 1, 0, 0), A(a2, 0.6f, 0.8f, 0, Coll1), B(b1, 0.8f, 0.6f, 0)]);
        var first = (USearchVectorStore)await OpenAsync();
        await first.UpsertAsync(records);
        first.Dispose();
        var files = Directory.GetFiles(_dir, "*.usearch");
        Assert.Equal(2, files.Length);
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
        File.Delete(files[0]);

        var second = (USearchVectorStore)await OpenAsync();
        Assert.True(second.NeedsRebuild);
        Assert.Contains("missing", second.RebuildReason, StringComparison.Ordinal);
        await Assert.ThrowsAsync<InvalidOperationException>(() => second.SearchAsync(new float[] { 1, 0, 0 }, 1, VectorFilter.Owner(OwnerA)));

        await second.RebuildAsync(records);
        Assert.False(second.NeedsRebuild);
        Assert.Equal(3, second.Count);
        AssertHits(await second.SearchAsync(new float[] { 1, 0, 0 }, 5, VectorFilter.Owner(OwnerA)), (a1, 1f), (a2, 0.6f));

        var third = (USearchVectorStore)await OpenAsync();
        Assert.False(third.NeedsRebuild);
        AssertHits(await third.SearchAsync(new float[] { 1, 0, 0 }, 5, VectorFilter.Owner(OwnerB)), (b1, 0.8f));
    }

    [Fact]
    public async Task CorruptMetadata_NeedsRebuild()
    {
        var first = (USearchVectorStore)await OpenAsync();
        await first.UpsertAsync([A(Guid.NewGuid(), 1, 0, 0)]);
        first.Dispose();
        await File.WriteAllTextAsync(Directory.GetFiles(_dir, "*.meta").Single(), "{ not json");

        var second = (USearchVectorStore)await OpenAsync();

        Assert.True(second.NeedsRebuild);
        await second.RebuildAsync([]);
        Assert.Equal(0, second.Count);
        Assert.Empty(Directory.GetFiles(_dir, "*.meta"));
    }
}

[Collection(PgVectorCollection.Name)]
public sealed class PgVectorStoreContractTests : VectorStoreContractTests
{
    private readonly string _table = "vt_" + Guid.NewGuid().ToString("N")[..12];

    private static string ConnectionString => PgVectorCollection.ConnectionString;

    protected override IVectorStore CreateStore() => new PgVectorStore(ConnectionString, _table);

    [Fact]
    public async Task LongestAllowedTableName_GetsItsTableAndIndexes_ALongerOneIsRefused()
    {
        var table = ("vt_" + Guid.NewGuid().ToString("N")).PadRight(48, 'x'); // raw-vector collections use 44 characters
        await using (var store = new PgVectorStore(ConnectionString, table))
        {
            await store.EnsureCollectionAsync(3);
            var (owner, document) = (Guid.NewGuid(), Guid.NewGuid());
            await store.UpsertAsync([new VectorRecord(Guid.NewGuid(), owner, null, document, new float[] { 1, 0, 0 })]);
            Assert.Equal(document, Assert.Single(await store.SearchAsync(new float[] { 1, 0, 0 }, 5, VectorFilter.Owner(owner))).DocumentId);
        }
        await using (var connection = new Npgsql.NpgsqlConnection(ConnectionString))
        {
            await connection.OpenAsync();
            await using var indexes = new Npgsql.NpgsqlCommand($"SELECT count(*) FROM pg_indexes WHERE tablename = '{table}' AND indexname = 'ix_{table}_embedding'", connection);
            Assert.Equal(1L, await indexes.ExecuteScalarAsync());
            await using var drop = new Npgsql.NpgsqlCommand($"DROP TABLE {table}", connection);
            await drop.ExecuteNonQueryAsync();
        }
        Assert.Throws<ArgumentException>(() => new PgVectorStore(ConnectionString, table + "x"));
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        if (Environment.GetEnvironmentVariable("SUTAZAI_TEST_PGVECTOR") is { Length: > 0 } cs)
        {
            await using var connection = new Npgsql.NpgsqlConnection(cs);
            await connection.OpenAsync();
            await using var drop = new Npgsql.NpgsqlCommand($"DROP TABLE IF EXISTS {_table}", connection);
            await drop.ExecuteNonQueryAsync();
        }
    }
}

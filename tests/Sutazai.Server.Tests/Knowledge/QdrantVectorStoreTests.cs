using Sutazai.Knowledge.Vectors;
using Xunit.Abstractions;

namespace Sutazai.Server.Tests.Knowledge;

/// <summary>
/// Offline checks of what the Qdrant adapter sends (Qdrant is not installable on the build machine, so the live
/// contract suite, <c>QdrantVectorStoreContractTests</c>, is compiled and run only when QDRANT_URL is set).
/// </summary>
public sealed class QdrantVectorStoreTests(ITestOutputHelper output)
{
    [Fact]
    public void QdrantContractSuite_IsCompiledIn_ExactlyWhenQdrantUrlIsSet()
    {
        var url = Environment.GetEnvironmentVariable("QDRANT_URL");
        var suite = typeof(QdrantVectorStoreTests).Assembly.GetType("Sutazai.Server.Tests.Knowledge.QdrantVectorStoreContractTests");
        output.WriteLine(suite is null
            ? "Qdrant contract suite NOT run: QDRANT_URL is not set (build and test with QDRANT_URL=http://host:6334 to run it)."
            : $"Qdrant contract suite compiled in; it runs against {url}.");
        Assert.Equal(!string.IsNullOrEmpty(url), suite is not null);
        if (suite is not null) Assert.True(suite.IsSubclassOf(typeof(VectorStoreContractTests)));
    }

    [Fact]
    public void Filter_OwnersOnly_IsOneKeywordsMatchOnOwnerId()
    {
        Guid a = Guid.NewGuid(), b = Guid.NewGuid();

        var filter = QdrantVectorStore.BuildFilter(new VectorFilter([a, b, a]));

        var condition = Assert.Single(filter.Must);
        Assert.Equal("owner_id", condition.Field.Key);
        Assert.Equal([a.ToString("D"), b.ToString("D")], condition.Field.Match.Keywords.Strings);
        Assert.Empty(filter.Should);
        Assert.Empty(filter.MustNot);
    }

    [Fact]
    public void Filter_WithCollections_AddsACollectionIdCondition_BothMust()
    {
        Guid owner = Guid.NewGuid(), c1 = Guid.NewGuid(), c2 = Guid.NewGuid();

        var filter = QdrantVectorStore.BuildFilter(VectorFilter.Owner(owner, c1, c2));

        Assert.Equal(2, filter.Must.Count);
        Assert.Equal("owner_id", filter.Must[0].Field.Key);
        Assert.Equal([owner.ToString("D")], filter.Must[0].Field.Match.Keywords.Strings);
        Assert.Equal("collection_id", filter.Must[1].Field.Key);
        Assert.Equal([c1.ToString("D"), c2.ToString("D")], filter.Must[1].Field.Match.Keywords.Strings);
    }

    [Fact]
    public void Point_CarriesIdVectorAndScopePayload_WithoutCollectionWhenNone()
    {
        Guid id = Guid.NewGuid(), owner = Guid.NewGuid(), document = Guid.NewGuid(), collection = Guid.NewGuid();

        var scoped = QdrantVectorStore.ToPoint(new VectorRecord(id, owner, collection, document, new float[] { 0.5f, 1, -2 }));
        var loose = QdrantVectorStore.ToPoint(new VectorRecord(id, owner, null, document, new float[] { 1, 0, 0 }));

        Assert.Equal(id.ToString("D"), scoped.Id.Uuid);
        Assert.Equal([0.5f, 1, -2], scoped.Vectors.Vector.Dense.Data);
        Assert.Equal(owner.ToString("D"), scoped.Payload["owner_id"].StringValue);
        Assert.Equal(document.ToString("D"), scoped.Payload["document_id"].StringValue);
        Assert.Equal(collection.ToString("D"), scoped.Payload["collection_id"].StringValue);
        Assert.Equal(["document_id", "owner_id"], loose.Payload.Keys.Order());
    }

    [Fact]
    public async Task Store_BeforeEnsureCollection_Throws_WithoutContactingQdrant()
    {
        // Port 9 on loopback: nothing listens, and nothing is sent because the store refuses first.
        using var store = new QdrantVectorStore(new Uri("http://127.0.0.1:9"), null, "never_created");

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => store.SearchAsync(new float[] { 1 }, 1, VectorFilter.Owner(Guid.NewGuid())));

        Assert.Contains("EnsureCollectionAsync", error.Message, StringComparison.Ordinal);
    }
}

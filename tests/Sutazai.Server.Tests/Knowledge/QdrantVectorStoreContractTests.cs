using Qdrant.Client;
using Sutazai.Knowledge.Vectors;

namespace Sutazai.Server.Tests.Knowledge;

/// <summary>
/// The vector store contract against a live Qdrant (gRPC URL in QDRANT_URL, e.g. http://localhost:6334). This file is
/// compiled only when QDRANT_URL is set at build time (see the test project); QdrantVectorStoreTests reports whether it is.
/// </summary>
public sealed class QdrantVectorStoreContractTests : VectorStoreContractTests
{
    private readonly string _collection = "contract_" + Guid.NewGuid().ToString("N")[..12];

    private static Uri Url => new(Environment.GetEnvironmentVariable("QDRANT_URL")
        ?? throw new InvalidOperationException("QDRANT_URL is not set although the Qdrant contract suite was compiled in: rebuild without it or set it."));

    protected override IVectorStore CreateStore() => new QdrantVectorStore(Url, Environment.GetEnvironmentVariable("QDRANT_API_KEY"), _collection);

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        using var client = new QdrantClient(Url, Environment.GetEnvironmentVariable("QDRANT_API_KEY"));
        if (await client.CollectionExistsAsync(_collection)) await client.DeleteCollectionAsync(_collection);
    }
}

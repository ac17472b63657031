using Microsoft.Extensions.Options;
using Qdrant.Client;
using Sutazai.Knowledge.Embeddings;
using Sutazai.Knowledge.Vectors;
using Sutazai.Server.Configuration;

namespace Sutazai.Server.Knowledge;

/// <summary>
/// Opens <see cref="IVectorStore"/>s of the configured engine (Sutazai:Knowledge:VectorStore), one per index namespace:
/// the document chunks of one embedding space, or one raw-vector collection of one owner. Namespaces never share an
/// index: a USearch folder, a pgvector table or a Qdrant collection each.
/// </summary>
public sealed class VectorStores(IOptions<KnowledgeOptions> options, IOptions<SutazaiOptions> sutazai) : IDisposable
{
    private readonly Lock _lock = new();
    private QdrantClient? _qdrant;

    public string Engine => options.Value.VectorStore;

    /// <summary>The index of document chunks embedded by <paramref name="identity"/>.</summary>
    public IVectorStore ForKnowledge(EmbedderIdentity identity) => Create(
        Path.Combine(sutazai.Value.DataPath, "vectors", identity.Slug), "knowledge_vectors_" + identity.Slug, "sutazai_knowledge_" + identity.Slug);

    /// <summary>The index of one raw-vector collection (its id is unique over all owners).</summary>
    public IVectorStore ForRawCollection(Guid collectionId) => Create(
        Path.Combine(sutazai.Value.DataPath, "raw-vectors", collectionId.ToString("N")), "raw_vectors_" + collectionId.ToString("N"), "sutazai_raw_" + collectionId.ToString("N"));

    private IVectorStore Create(string usearchDirectory, string pgTable, string qdrantCollection)
    {
        var o = options.Value;
        return o.VectorStore switch
        {
            "pgvector" => new PgVectorStore(o.PgVectorConnectionString, pgTable),
            "qdrant" => new QdrantVectorStore(Qdrant(o.Qdrant), qdrantCollection),
            _ => new USearchVectorStore(usearchDirectory),
        };
    }

    private QdrantClient Qdrant(QdrantOptions o)
    {
        lock (_lock)
        {
            return _qdrant ??= new QdrantClient(new Uri(o.Url), string.IsNullOrEmpty(o.ApiKey) ? null : o.ApiKey);
        }
    }

    public void Dispose() => _qdrant?.Dispose();
}

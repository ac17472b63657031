using System.Globalization;
using Qdrant.Client;
using Qdrant.Client.Grpc;

namespace Sutazai.Knowledge.Vectors;

/// <summary>
/// Qdrant (gRPC, <see cref="QdrantClient"/>): one Qdrant collection per store, cosine distance, points keyed by the
/// record id (a UUID) with the payload <c>owner_id</c>, <c>collection_id</c> (absent when none) and <c>document_id</c>,
/// each with a keyword payload index. The owner/collection filter is a Qdrant payload filter sent with the search, so
/// Qdrant applies it inside the HNSW walk (filterable HNSW) before taking the top k.
/// <para>Not run against a live Qdrant in this repository's CI: Qdrant is not installable on the build machine. The
/// contract suite runs when <c>QDRANT_URL</c> is set; offline tests check the filters and points built here.</para>
/// </summary>
public sealed class QdrantVectorStore : IVectorStore, IDisposable
{
    public const string OwnerField = "owner_id";
    public const string CollectionField = "collection_id";
    public const string DocumentField = "document_id";

    private readonly QdrantClient _client;
    private readonly bool _ownsClient;
    private readonly SemaphoreSlim _init = new(1, 1);
    private int _dimensions;

    /// <param name="client">A client shared by several stores; this store does not dispose it.</param>
    /// <param name="collection">The Qdrant collection this store keeps its points in.</param>
    public QdrantVectorStore(QdrantClient client, string collection)
        : this(client, collection, ownsClient: false)
    {
    }

    /// <summary>A store with a client of its own for <paramref name="url"/> (e.g. <c>http://localhost:6334</c>, the gRPC port).</summary>
    public QdrantVectorStore(Uri url, string? apiKey, string collection)
        : this(new QdrantClient(url, string.IsNullOrEmpty(apiKey) ? null : apiKey), collection, ownsClient: true)
    {
    }

    private QdrantVectorStore(QdrantClient client, string collection, bool ownsClient)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentException.ThrowIfNullOrWhiteSpace(collection);
        _client = client;
        _ownsClient = ownsClient;
        Collection = collection;
    }

    public string Name => "qdrant";

    public string Collection { get; }

    public async Task EnsureCollectionAsync(int dimensions, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimensions, 1);
        await _init.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_dimensions != 0)
            {
                if (_dimensions != dimensions)
                {
                    throw new VectorDimensionMismatchException(_dimensions, dimensions, "The requested collection");
                }

                return;
            }

            if (await _client.CollectionExistsAsync(Collection, cancellationToken).ConfigureAwait(false))
            {
                var info = await _client.GetCollectionInfoAsync(Collection, cancellationToken).ConfigureAwait(false);
                var stored = (int)info.Config.Params.VectorsConfig.Params.Size;
                if (stored != dimensions)
                {
                    throw new VectorDimensionMismatchException(stored, dimensions, "The requested collection");
                }
            }
            else
            {
                await _client.CreateCollectionAsync(Collection, new VectorParams { Size = (ulong)dimensions, Distance = Distance.Cosine },
                    cancellationToken: cancellationToken).ConfigureAwait(false);
                foreach (var field in (string[])[OwnerField, CollectionField, DocumentField])
                {
                    await _client.CreatePayloadIndexAsync(Collection, field, PayloadSchemaType.Keyword, cancellationToken: cancellationToken)
                        .ConfigureAwait(false);
                }
            }

            _dimensions = dimensions;
        }
        finally
        {
            _init.Release();
        }
    }

    public async Task UpsertAsync(IReadOnlyList<VectorRecord> records, CancellationToken cancellationToken = default)
    {
        EnsureOpen();
        VectorChecks.Records(records, _dimensions);
        if (records.Count == 0)
        {
            return;
        }

        await _client.UpsertAsync(Collection, [.. records.Select(ToPoint)], wait: true, cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    public async Task DeleteAsync(IReadOnlyList<Guid> ids, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ids);
        EnsureOpen();
        if (ids.Count == 0)
        {
            return;
        }

        await _client.DeleteAsync(Collection, ids, wait: true, cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    public async Task DeleteByDocumentAsync(Guid documentId, CancellationToken cancellationToken = default)
    {
        EnsureOpen();
        var filter = new Filter { Must = { Conditions.MatchKeyword(DocumentField, Key(documentId)) } };
        await _client.DeleteAsync(Collection, filter, wait: true, cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<VectorHit>> SearchAsync(
        ReadOnlyMemory<float> query, int k, VectorFilter filter, CancellationToken cancellationToken = default)
    {
        EnsureOpen();
        VectorChecks.Search(query, k, filter, _dimensions);
        if (filter.OwnerIds.Count == 0 || filter.CollectionIds is { Count: 0 })
        {
            return [];
        }

        var points = await _client.QueryAsync(Collection, query: query.ToArray(), filter: BuildFilter(filter), limit: (ulong)k,
            payloadSelector: new[] { DocumentField }, cancellationToken: cancellationToken).ConfigureAwait(false);
        return [.. points.Select(ToHit).OrderByDescending(h => h.Score).ThenBy(h => h.Id)];
    }

    /// <summary>The payload filter a search sends: owner_id is one of the owners and, when collections are given,
    /// collection_id is one of them (a point without a collection never matches a collection filter).</summary>
    public static Filter BuildFilter(VectorFilter filter)
    {
        ArgumentNullException.ThrowIfNull(filter);
        var result = new Filter { Must = { Conditions.Match(OwnerField, [.. filter.OwnerIds.Distinct().Select(Key)]) } };
        if (filter.CollectionIds is { } collections)
        {
            result.Must.Add(Conditions.Match(CollectionField, [.. collections.Distinct().Select(Key)]));
        }

        return result;
    }

    /// <summary>The Qdrant point a record is stored as.</summary>
    public static PointStruct ToPoint(VectorRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var point = new PointStruct { Id = record.Id, Vectors = record.Vector.ToArray() };
        point.Payload[OwnerField] = Key(record.OwnerId);
        point.Payload[DocumentField] = Key(record.DocumentId);
        if (record.CollectionId is { } collection)
        {
            point.Payload[CollectionField] = Key(collection);
        }

        return point;
    }

    public void Dispose()
    {
        _init.Dispose();
        if (_ownsClient)
        {
            _client.Dispose();
        }
    }

    private static VectorHit ToHit(ScoredPoint point) => new(
        Guid.Parse(point.Id.Uuid, CultureInfo.InvariantCulture),
        point.Payload.TryGetValue(DocumentField, out var document) ? Guid.Parse(document.StringValue, CultureInfo.InvariantCulture) : Guid.Empty,
        point.Score);

    private static string Key(Guid id) => id.ToString("D", CultureInfo.InvariantCulture);

    private void EnsureOpen()
    {
        if (_dimensions == 0)
        {
            throw new InvalidOperationException("Call EnsureCollectionAsync before using the vector store.");
        }
    }
}

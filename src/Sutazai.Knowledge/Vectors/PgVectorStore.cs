using System.Text.RegularExpressions;
using Npgsql;
using NpgsqlTypes;
using Pgvector;

namespace Sutazai.Knowledge.Vectors;

/// <summary>
/// PostgreSQL + pgvector: one table (<c>id, owner_id, collection_id, document_id, embedding vector(n)</c>) with an
/// HNSW index (<c>vector_cosine_ops</c>) and a b-tree on the owner. The filter is part of the query's WHERE clause
/// and ranking is <c>ORDER BY embedding &lt;=&gt; @q LIMIT k</c>. Because an HNSW index scan can still stop before k
/// rows pass a WHERE clause, searches turn on pgvector's iterative scan (strict order) and, when fewer than k rows come
/// back while more match the filter, re-run the query as an exact scan — so the filter always applies before top-k.
/// </summary>
public sealed partial class PgVectorStore : IVectorStore, IAsyncDisposable
{
    private readonly string _connectionString;
    private readonly string _table;
    private readonly SemaphoreSlim _init = new(1, 1);
    private NpgsqlDataSource? _dataSource;
    private int _dimensions;

    public PgVectorStore(string connectionString, string table = "knowledge_vectors")
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        if (!IdentifierPattern().IsMatch(table))
        {
            throw new ArgumentException($"'{table}' is not a plain lower-case SQL identifier.", nameof(table));
        }

        _connectionString = connectionString;
        _table = table;
    }

    public string Name => "pgvector";

    public async Task EnsureCollectionAsync(int dimensions, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimensions, 1);
        await _init.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_dataSource is not null)
            {
                if (_dimensions != dimensions)
                {
                    throw new VectorDimensionMismatchException(_dimensions, dimensions, "The requested collection");
                }

                return;
            }

            await using (var plain = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(_connectionString) { Pooling = false }.ConnectionString))
            {
                await plain.OpenAsync(cancellationToken).ConfigureAwait(false);
                await using var create = new NpgsqlCommand("CREATE EXTENSION IF NOT EXISTS vector", plain);
                await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            var builder = new NpgsqlDataSourceBuilder(_connectionString);
            builder.UseVector();
            var dataSource = builder.Build();
            try
            {
                await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
                await using (var ddl = new NpgsqlCommand(
                    $"""
                    CREATE TABLE IF NOT EXISTS {_table} (
                        id uuid PRIMARY KEY,
                        owner_id uuid NOT NULL,
                        collection_id uuid NULL,
                        document_id uuid NOT NULL,
                        embedding vector({dimensions}) NOT NULL);
                    CREATE INDEX IF NOT EXISTS ix_{_table}_owner ON {_table} (owner_id, collection_id);
                    CREATE INDEX IF NOT EXISTS ix_{_table}_document ON {_table} (document_id);
                    CREATE INDEX IF NOT EXISTS ix_{_table}_embedding ON {_table} USING hnsw (embedding vector_cosine_ops);
                    """, connection))
                {
                    await ddl.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }

                await using (var dims = new NpgsqlCommand(
                    "SELECT atttypmod FROM pg_attribute WHERE attrelid = @table::regclass AND attname = 'embedding'", connection))
                {
                    dims.Parameters.AddWithValue("table", _table);
                    var stored = Convert.ToInt32(await dims.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false),
                        System.Globalization.CultureInfo.InvariantCulture);
                    if (stored != dimensions)
                    {
                        throw new VectorDimensionMismatchException(stored, dimensions, "The requested collection");
                    }
                }
            }
            catch
            {
                await dataSource.DisposeAsync().ConfigureAwait(false);
                throw;
            }

            _dimensions = dimensions;
            _dataSource = dataSource;
        }
        finally
        {
            _init.Release();
        }
    }

    public async Task UpsertAsync(IReadOnlyList<VectorRecord> records, CancellationToken cancellationToken = default)
    {
        var dataSource = Ready();
        VectorChecks.Records(records, _dimensions);
        if (records.Count == 0)
        {
            return;
        }

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand(
            $"""
            INSERT INTO {_table} (id, owner_id, collection_id, document_id, embedding)
            SELECT * FROM unnest(@ids, @owners, @collections, @documents, @embeddings)
            ON CONFLICT (id) DO UPDATE SET owner_id = excluded.owner_id, collection_id = excluded.collection_id,
                document_id = excluded.document_id, embedding = excluded.embedding
            """, connection);
        command.Parameters.AddWithValue("ids", records.Select(r => r.Id).ToArray());
        command.Parameters.AddWithValue("owners", records.Select(r => r.OwnerId).ToArray());
        command.Parameters.Add(new NpgsqlParameter("collections", NpgsqlDbType.Array | NpgsqlDbType.Uuid)
        {
            Value = records.Select(r => r.CollectionId).ToArray(),
        });
        command.Parameters.AddWithValue("documents", records.Select(r => r.DocumentId).ToArray());
        command.Parameters.AddWithValue("embeddings", records.Select(r => new Vector(r.Vector)).ToArray());
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task DeleteAsync(IReadOnlyList<Guid> ids, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var dataSource = Ready();
        await using var command = dataSource.CreateCommand($"DELETE FROM {_table} WHERE id = ANY(@ids)");
        command.Parameters.AddWithValue("ids", ids.ToArray());
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task DeleteByDocumentAsync(Guid documentId, CancellationToken cancellationToken = default)
    {
        var dataSource = Ready();
        await using var command = dataSource.CreateCommand($"DELETE FROM {_table} WHERE document_id = @document");
        command.Parameters.AddWithValue("document", documentId);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<VectorHit>> SearchAsync(
        ReadOnlyMemory<float> query, int k, VectorFilter filter, CancellationToken cancellationToken = default)
    {
        var dataSource = Ready();
        VectorChecks.Search(query, k, filter, _dimensions);
        var owners = filter.OwnerIds.Distinct().ToArray();
        var collections = filter.CollectionIds?.Distinct().ToArray();
        if (owners.Length == 0 || collections is { Length: 0 })
        {
            return [];
        }

        var where = collections is null ? "owner_id = ANY(@owners)" : "owner_id = ANY(@owners) AND collection_id = ANY(@collections)";
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var hits = await RunSearchAsync(connection, where, query, k, owners, collections, exact: false, cancellationToken).ConfigureAwait(false);
        if (hits.Count < k)
        {
            await using var count = new NpgsqlCommand($"SELECT count(*) FROM {_table} WHERE {where}", connection);
            AddFilter(count, owners, collections);
            var matching = (long)(await count.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
            if (matching > hits.Count)
            {
                hits = await RunSearchAsync(connection, where, query, k, owners, collections, exact: true, cancellationToken).ConfigureAwait(false);
            }
        }

        return hits;
    }

    public async ValueTask DisposeAsync()
    {
        if (_dataSource is not null)
        {
            await _dataSource.DisposeAsync().ConfigureAwait(false);
        }

        _init.Dispose();
    }

    private async Task<List<VectorHit>> RunSearchAsync(NpgsqlConnection connection, string where, ReadOnlyMemory<float> query,
        int k, Guid[] owners, Guid[]? collections, bool exact, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var settings = new NpgsqlCommand(
            exact ? "SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off"
                  : "SET LOCAL hnsw.iterative_scan = strict_order", connection, transaction))
        {
            await settings.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await using var command = new NpgsqlCommand(
            $"""
            SELECT id, document_id, 1 - (embedding <=> @q) AS score FROM {_table}
            WHERE {where} ORDER BY embedding <=> @q, id LIMIT @k
            """, connection, transaction);
        command.Parameters.AddWithValue("q", new Vector(query));
        command.Parameters.AddWithValue("k", k);
        AddFilter(command, owners, collections);
        var hits = new List<VectorHit>(k);
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                hits.Add(new VectorHit(reader.GetGuid(0), reader.GetGuid(1), (float)reader.GetDouble(2)));
            }
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return hits;
    }

    private static void AddFilter(NpgsqlCommand command, Guid[] owners, Guid[]? collections)
    {
        command.Parameters.AddWithValue("owners", owners);
        if (collections is not null)
        {
            command.Parameters.AddWithValue("collections", collections);
        }
    }

    private NpgsqlDataSource Ready() =>
        _dataSource ?? throw new InvalidOperationException("Call EnsureCollectionAsync before using the vector store.");

    // At most 48 characters, so the longest name made from it (ix_<table>_embedding) stays within PostgreSQL's 63;
    // a raw-vector collection's table (raw_vectors_ and 32 hex digits) is 44.
    [GeneratedRegex("^[a-z_][a-z0-9_]{0,47}$")]
    private static partial Regex IdentifierPattern();
}

using System.Data.Common;
using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Sutazai.Data;

namespace Sutazai.Server.Knowledge;

/// <summary>
/// Full-text side of the chunk index: SQLite FTS5 (a <c>chunk_fts</c> table kept here) or PostgreSQL's generated
/// <c>tsvector</c> column (kept by the database). Ranking is BM25 / ts_rank; visibility is filtered in the query.
/// </summary>
public static partial class ChunkIndex
{
    [GeneratedRegex(@"[\p{L}\p{N}]+")]
    private static partial Regex Words();

    public static async Task AddAsync(AppDbContext db, IEnumerable<(Guid Id, Guid OwnerId, string Text)> chunks, CancellationToken ct)
    {
        if (!db.Database.IsSqlite()) return;
        foreach (var (id, owner, text) in chunks)
            await db.Database.ExecuteSqlInterpolatedAsync($"INSERT INTO chunk_fts(chunk_id, owner_id, text) VALUES ({id.ToString("D")}, {owner.ToString("D")}, {text})", ct);
    }

    public static async Task RemoveDocumentAsync(AppDbContext db, IReadOnlyList<Guid> chunkIds, CancellationToken ct)
    {
        if (!db.Database.IsSqlite()) return;
        foreach (var id in chunkIds)
            await db.Database.ExecuteSqlInterpolatedAsync($"DELETE FROM chunk_fts WHERE chunk_id = {id.ToString("D")}", ct);
    }

    /// <summary>Chunk ids matching any word of <paramref name="query"/>, best first, among owners the caller may read.</summary>
    public static async Task<List<Guid>> SearchAsync(AppDbContext db, string query, IReadOnlyCollection<Guid> ownerIds, int limit, CancellationToken ct)
    {
        var words = Words().Matches(query).Select(m => m.Value).Distinct(StringComparer.OrdinalIgnoreCase).Take(32).ToList();
        if (words.Count == 0 || ownerIds.Count == 0) return [];
        var connection = db.Database.GetDbConnection();
        if (connection.State != System.Data.ConnectionState.Open) await db.Database.OpenConnectionAsync(ct);
        await using var command = connection.CreateCommand();
        var owners = ownerIds.ToList();
        if (db.Database.IsSqlite())
        {
            var ownerParams = string.Join(", ", owners.Select((_, i) => $"$o{i}"));
            command.CommandText = $"SELECT chunk_id FROM chunk_fts WHERE chunk_fts MATCH $q AND owner_id IN ({ownerParams}) ORDER BY bm25(chunk_fts) LIMIT $n";
            Add(command, "$q", string.Join(" OR ", words.Select(w => "\"" + w + "\"")));
            for (var i = 0; i < owners.Count; i++) Add(command, $"$o{i}", owners[i].ToString("D"));
            Add(command, "$n", limit);
        }
        else
        {
            command.CommandText = "SELECT \"Id\"::text FROM document_chunks, to_tsquery('english', @q) query WHERE search @@ query AND \"OwnerId\" = ANY(@owners) ORDER BY ts_rank(search, query) DESC LIMIT @n";
            Add(command, "@q", string.Join(" | ", words.Select(w => w.ToLowerInvariant())));
            Add(command, "@owners", owners.ToArray());
            Add(command, "@n", limit);
        }
        var ids = new List<Guid>();
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) ids.Add(Guid.Parse(reader.GetString(0)));
        return ids;
    }

    private static void Add(DbCommand command, string name, object value)
    {
        var p = command.CreateParameter();
        p.ParameterName = name;
        p.Value = value;
        command.Parameters.Add(p);
    }
}

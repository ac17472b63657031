using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.AI;
using Sutazai.Agents.Tools;
using Sutazai.Data;
using Sutazai.Knowledge.Vectors;

namespace Sutazai.Server.Knowledge;

/// <summary>Vector, keyword (BM25) and hybrid (reciprocal rank fusion) search over the chunks a user may read.</summary>
public sealed class KnowledgeSearch(AppDbContext db, IEmbeddingGenerator<string, Embedding<float>> embedder, IVectorStore vectors) : IKnowledgeSearch
{
    public const int RrfK = 60;

    /// <summary>The agents' knowledge_search tool: hybrid search, as the tool's hits.</summary>
    async Task<IReadOnlyList<KnowledgeHit>> IKnowledgeSearch.SearchAsync(Guid userId, string query, Guid? collectionId, int k, CancellationToken ct) =>
        (await SearchAsync(userId, query, collectionId, k, "hybrid", ct))
            .Select(h => new KnowledgeHit(h.DocumentId, h.Title, h.ChunkId, h.Text, h.Score, h.Page, h.Heading, h.SharedBy)).ToList();

    public async Task<List<SearchResult>> SearchAsync(Guid userId, string query, Guid? collectionId, int k, string mode, CancellationToken ct)
    {
        var scope = await KnowledgeAccess.ScopeAsync(db, userId, ct);
        var candidates = Math.Max(k * 4, 20);
        var rankings = new List<List<Guid>>();
        if (mode is "vector" or "hybrid") rankings.Add(await VectorAsync(scope, query, collectionId, candidates, ct));
        if (mode is "keyword" or "hybrid") rankings.Add(await KeywordAsync(scope, query, candidates, ct));

        // Reciprocal rank fusion: each list contributes 1/(60 + rank); with one list it is that list's order.
        var fused = new Dictionary<Guid, double>();
        foreach (var ranking in rankings)
            for (var i = 0; i < ranking.Count; i++)
                fused[ranking[i]] = fused.GetValueOrDefault(ranking[i]) + 1.0 / (RrfK + i + 1);
        var ordered = fused.OrderByDescending(p => p.Value).Select(p => p.Key).ToList();

        // Load and re-check visibility and the collection in SQL: an index can never widen what a user sees.
        var visible = KnowledgeAccess.Visible(db, scope);
        var rows = await (from c in db.Chunks.AsNoTracking()
                          join d in visible on c.DocumentId equals d.Id
                          join u in db.Users on d.OwnerId equals u.Id
                          where ordered.Contains(c.Id) && (collectionId == null || d.CollectionId == collectionId)
                          select new { c.Id, c.DocumentId, c.Text, c.Page, c.Heading, Title = d.Title ?? d.Name, d.OwnerId, Owner = u.UserName }).ToListAsync(ct);
        var byId = rows.ToDictionary(r => r.Id);
        // Whose passage it is travels with it, so a prompt can tell another user's words from the reader's own.
        return ordered.Where(byId.ContainsKey).Take(k)
            .Select(id => byId[id])
            .Select(r => new SearchResult(r.DocumentId, r.Title, r.Id, r.Text, Math.Round(fused[r.Id], 6), r.Page, r.Heading,
                r.OwnerId == userId ? null : r.Owner ?? r.OwnerId.ToString())).ToList();
    }

    private async Task<List<Guid>> VectorAsync(KnowledgeScope scope, string query, Guid? collectionId, int n, CancellationToken ct)
    {
        var embedding = (await embedder.GenerateAsync([query], cancellationToken: ct))[0].Vector;
        var collections = collectionId is { } only ? new[] { only } : null;
        var hits = new List<VectorHit>(await vectors.SearchAsync(embedding, n, new VectorFilter([scope.UserId], collections), ct));
        var shared = collectionId is { } c ? scope.SharedCollectionIds.Where(s => s == c).ToList() : scope.SharedCollectionIds.ToList();
        if (shared.Count > 0 && scope.SharedOwnerIds.Count > 0)
            hits.AddRange(await vectors.SearchAsync(embedding, n, new VectorFilter(scope.SharedOwnerIds, shared), ct));
        return hits.OrderByDescending(h => h.Score).Select(h => h.Id).Distinct().Take(n).ToList();
    }

    private Task<List<Guid>> KeywordAsync(KnowledgeScope scope, string query, int n, CancellationToken ct) =>
        ChunkIndex.SearchAsync(db, query, [scope.UserId, .. scope.SharedOwnerIds], n * 4, ct);
}

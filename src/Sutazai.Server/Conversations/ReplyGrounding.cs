using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sutazai.Data;

namespace Sutazai.Server.Conversations;

/// <summary>Ground a reply in documents: the given collections (mine or shared with me), or everything I may read.</summary>
public sealed record KnowledgeRequest(IReadOnlyList<Guid>? CollectionIds, int TopK = 5);

/// <summary>
/// The grounding step of a reply: the question's best chunks from the chosen collections become numbered sources the
/// reply cites, with the knowledge graph's facts about them, in the system prompt.
/// </summary>
public sealed class ReplyGrounding(AppDbContext db, Knowledge.KnowledgeSearch search, Graph.GraphQueries graph, IOptionsMonitor<Graph.GraphOptions> graphOptions)
{
    public const string UnreadableCollections = "Every collection must be yours or shared with you.";

    public sealed record Grounded(string? SystemPrompt, List<Citation> Citations);

    /// <summary>
    /// What a message asked to be grounded in — the given collections, or everything readable with
    /// <paramref name="useKnowledge"/> — or null for no grounding; the error names collections the user may not read.
    /// </summary>
    public async Task<(KnowledgeRequest? Request, string? Error)> KnowledgeForAsync(Guid userId, IReadOnlyCollection<Guid>? collectionIds, bool useKnowledge, CancellationToken ct)
    {
        if (collectionIds is not { Count: > 0 } && !useKnowledge) return (null, null);
        if (collectionIds is { Count: > 0 } && !await CanReadCollectionsAsync(userId, collectionIds, ct)) return (null, UnreadableCollections);
        return (new KnowledgeRequest(collectionIds?.ToList()), null);
    }

    /// <summary>The system prompt the reply is generated under, and the sources it cites (none without knowledge or hits).</summary>
    public async Task<Grounded> GroundAsync(Guid userId, string question, string? systemPrompt, KnowledgeRequest? knowledge, CancellationToken ct)
    {
        if (knowledge is null) return new Grounded(systemPrompt, []);
        var citations = await RetrieveAsync(userId, question, knowledge, ct);
        if (citations.Count == 0) return new Grounded(systemPrompt, []);
        var facts = await graph.FactsAsync(await Knowledge.KnowledgeAccess.ScopeAsync(db, userId, ct), question, graphOptions.CurrentValue.MaxFacts, ct);
        return new Grounded(GroundingPrompt.Build(systemPrompt, citations, facts), citations);
    }

    /// <summary>True when every id names a collection the user owns or that is shared with them.</summary>
    private async Task<bool> CanReadCollectionsAsync(Guid userId, IReadOnlyCollection<Guid> ids, CancellationToken ct)
    {
        var scope = await Knowledge.KnowledgeAccess.ScopeAsync(db, userId, ct);
        var distinct = ids.Distinct().ToList();
        var readable = await db.Collections.CountAsync(c => distinct.Contains(c.Id) && (c.OwnerId == userId || scope.SharedCollectionIds.Contains(c.Id)), ct);
        return readable == distinct.Count;
    }

    private async Task<List<Citation>> RetrieveAsync(Guid userId, string question, KnowledgeRequest knowledge, CancellationToken ct)
    {
        var hits = new List<Knowledge.SearchResult>();
        if (knowledge.CollectionIds is { Count: > 0 } collections)
        {
            foreach (var collection in collections) hits.AddRange(await search.SearchAsync(userId, question, collection, knowledge.TopK, "hybrid", ct));
            hits = hits.OrderByDescending(h => h.Score).DistinctBy(h => h.ChunkId).Take(knowledge.TopK).ToList();
        }
        else
        {
            hits = await search.SearchAsync(userId, question, null, knowledge.TopK, "hybrid", ct);
        }
        return hits.Select((h, i) => new Citation(i + 1, h.DocumentId, h.ChunkId, h.Title, h.Page, h.Heading, h.Text, h.SharedBy)).ToList();
    }
}

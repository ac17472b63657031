using System.ComponentModel;
using Microsoft.Extensions.AI;

namespace Sutazai.Agents.Tools;

/// <param name="SharedBy">The owner's user name for a passage shared with the user; null for the user's own.</param>
public sealed record KnowledgeHit(Guid DocumentId, string Title, Guid ChunkId, string Text, double Score, int? Page, string? Heading, string? SharedBy);

public sealed record KnowledgeSearchResult(string Query, IReadOnlyList<KnowledgeHit> Results);

/// <summary>
/// The host's document search as the knowledge tool sees it (a scoped service): hybrid search over what
/// <paramref name="userId"/> may read, in one collection or (null) everything; access is checked by the host.
/// </summary>
public interface IKnowledgeSearch
{
    Task<IReadOnlyList<KnowledgeHit>> SearchAsync(Guid userId, string query, Guid? collectionId, int k, CancellationToken ct);
}

/// <summary>knowledge_search: hybrid search over the documents the run's user may read (through <see cref="IKnowledgeSearch"/>).</summary>
public sealed class KnowledgeToolProvider : IToolProvider
{
    public const int DefaultK = 5;
    public const int MaxK = 50;
    public const int MaxQueryLength = 1000;
    public const int MaxCollections = 20;

    public string Name => "knowledge";

    public string Description => "Searches the user's documents and the collections shared with them.";

    public (bool Available, string? Reason) Health() => (true, null);

    public IReadOnlyList<AgentTool> Create(ToolContext context) =>
    [
        new(AIFunctionFactory.Create(
            ([Description("What to look for, in words.")] string query,
             [Description("How many passages to return (default 5, at most 50).")] int? k = null,
             [Description("Search only these collections (ids); omit to search everything the user can read.")] Guid[]? collectionIds = null,
             CancellationToken cancellationToken = default) => SearchAsync(context, query, k, collectionIds, cancellationToken),
            "knowledge_search",
            "Hybrid (semantic + keyword) search over the user's documents; returns passages with documentId, title, chunkId, text, score, page and heading to cite."),
            SideEffects: false, _ => ToolRisk.Low),
    ];

    private static async Task<KnowledgeSearchResult> SearchAsync(ToolContext context, string query, int? k, Guid[]? collectionIds, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(query) || query.Length > MaxQueryLength) throw new ToolException($"Give a query of 1 to {MaxQueryLength} characters.");
        var count = k ?? DefaultK;
        if (count < 1 || count > MaxK) throw new ToolException($"k must be between 1 and {MaxK}.");
        var collections = collectionIds?.Distinct().ToList() ?? [];
        if (collections.Count > MaxCollections) throw new ToolException($"Give at most {MaxCollections} collectionIds.");

        await using var scope = context.Services.CreateAsyncScope();
        var search = scope.ServiceProvider.GetRequiredService<IKnowledgeSearch>();
        List<KnowledgeHit> hits;
        if (collections.Count == 0)
        {
            hits = [.. await search.SearchAsync(context.UserId, query, null, count, ct)];
        }
        else
        {
            // One search per collection (each re-checked against what the user may read), merged by score.
            hits = [];
            foreach (var collection in collections) hits.AddRange(await search.SearchAsync(context.UserId, query, collection, count, ct));
            hits = hits.DistinctBy(h => h.ChunkId).OrderByDescending(h => h.Score).Take(count).ToList();
        }
        return new KnowledgeSearchResult(query, hits);
    }
}

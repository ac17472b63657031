using Microsoft.EntityFrameworkCore;
using Sutazai.Data;
using Sutazai.Knowledge.Graph;
using Sutazai.Server.Knowledge;

namespace Sutazai.Server.Graph;

public sealed record GraphNode(Guid Id, string Name, string Type, int MentionCount, int? Depth = null);

/// <summary>An edge as a reader sees it: the weights of every visible document's edges with these ends and relation, summed.</summary>
public sealed record GraphLink(Guid Source, Guid Target, string Relation, double Weight);

public sealed record EntityDocument(Guid DocumentId, string Title, int Mentions);

public sealed record EntityDetail(Guid Id, string Name, string Type, int MentionCount, IReadOnlyList<EntityDocument> Documents, IReadOnlyList<GraphNode> Neighbors, IReadOnlyList<GraphLink> Edges);

public sealed record Neighborhood(GraphNode Entity, int Depth, IReadOnlyList<GraphNode> Nodes, IReadOnlyList<GraphLink> Edges, bool Truncated);

public sealed record GraphPath(int Length, IReadOnlyList<GraphNode> Nodes, IReadOnlyList<GraphLink> Edges);

/// <summary>
/// The read side of the knowledge graph, always through a <see cref="KnowledgeScope"/>: an entity exists for a reader
/// when a document they may read mentions it, and an edge when a document they may read states it; mention counts
/// and weights count only those documents.
/// </summary>
public sealed class GraphQueries(AppDbContext db)
{
    public const int MaxNodes = 1000;

    private IQueryable<Guid> VisibleDocuments(KnowledgeScope scope) => KnowledgeAccess.Visible(db, scope).Select(d => d.Id);

    private static List<Guid> Owners(KnowledgeScope scope) => [scope.UserId, .. scope.SharedOwnerIds];

    public async Task<List<GraphNode>> ListAsync(KnowledgeScope scope, string? q, string? type, int limit, CancellationToken ct)
    {
        var visible = VisibleDocuments(scope);
        var owners = Owners(scope);
        var query = db.GraphEntities.AsNoTracking().Where(e => owners.Contains(e.OwnerId));
        var name = string.IsNullOrWhiteSpace(q) ? null : EntityNames.Normalize(q, "");
        if (name is { Length: > 0 }) query = query.Where(e => e.NormalizedName.Contains(name));
        if (!string.IsNullOrWhiteSpace(type)) query = query.Where(e => e.Type == type);
        var rows = await query
            .Select(e => new { e.Id, e.Name, e.Type, Mentions = db.GraphMentions.Where(m => m.EntityId == e.Id && visible.Contains(m.DocumentId)).Sum(m => (int?)m.Count) ?? 0 })
            .Where(e => e.Mentions > 0)
            .OrderByDescending(e => e.Mentions).ThenBy(e => e.Name).ThenBy(e => e.Id)
            .Take(limit).ToListAsync(ct);
        return rows.Select(r => new GraphNode(r.Id, r.Name, r.Type, r.Mentions)).ToList();
    }

    /// <summary>The entities among <paramref name="ids"/> the scope can see, with their visible mention counts.</summary>
    public async Task<Dictionary<Guid, GraphNode>> NodesAsync(KnowledgeScope scope, IReadOnlyCollection<Guid> ids, CancellationToken ct)
    {
        var visible = VisibleDocuments(scope);
        var owners = Owners(scope);
        var list = ids.ToList();
        var rows = await db.GraphEntities.AsNoTracking().Where(e => list.Contains(e.Id) && owners.Contains(e.OwnerId))
            .Select(e => new { e.Id, e.Name, e.Type, Mentions = db.GraphMentions.Where(m => m.EntityId == e.Id && visible.Contains(m.DocumentId)).Sum(m => (int?)m.Count) ?? 0 })
            .Where(e => e.Mentions > 0).ToListAsync(ct);
        return rows.ToDictionary(r => r.Id, r => new GraphNode(r.Id, r.Name, r.Type, r.Mentions));
    }

    public async Task<GraphNode?> FindAsync(KnowledgeScope scope, Guid id, CancellationToken ct) =>
        (await NodesAsync(scope, [id], ct)).GetValueOrDefault(id);

    /// <summary>An entity by id, or by name (the most mentioned visible entity with that normalised name).</summary>
    public async Task<GraphNode?> ResolveAsync(KnowledgeScope scope, string idOrName, CancellationToken ct)
    {
        if (Guid.TryParse(idOrName, out var id)) return await FindAsync(scope, id, ct);
        var name = EntityNames.Normalize(idOrName, "");
        var owners = Owners(scope);
        var candidates = await db.GraphEntities.AsNoTracking().Where(e => owners.Contains(e.OwnerId) && e.NormalizedName == name).Select(e => e.Id).ToListAsync(ct);
        var nodes = await NodesAsync(scope, candidates, ct);
        return nodes.Values.OrderByDescending(n => n.MentionCount).ThenBy(n => n.Id).FirstOrDefault();
    }

    public async Task<EntityDetail?> DetailAsync(KnowledgeScope scope, Guid id, CancellationToken ct)
    {
        if (await FindAsync(scope, id, ct) is not { } node) return null;
        var visible = KnowledgeAccess.Visible(db, scope);
        var documents = await (from m in db.GraphMentions.AsNoTracking()
                               join d in visible on m.DocumentId equals d.Id
                               where m.EntityId == id
                               group m by new { d.Id, Title = d.Title ?? d.Name } into g
                               select new { g.Key.Id, g.Key.Title, Mentions = g.Sum(m => m.Count) }).ToListAsync(ct);
        var edges = (await LinksAroundAsync(scope, [id], ct)).Take(100).ToList();
        var others = await NodesAsync(scope, edges.SelectMany(e => new[] { e.Source, e.Target }).Where(e => e != id).Distinct().ToList(), ct);
        return new EntityDetail(node.Id, node.Name, node.Type, node.MentionCount,
            documents.OrderByDescending(d => d.Mentions).ThenBy(d => d.Title, StringComparer.Ordinal).Select(d => new EntityDocument(d.Id, d.Title, d.Mentions)).ToList(),
            others.Values.OrderBy(n => n.Name, StringComparer.Ordinal).ToList(), edges);
    }

    /// <summary>Entities within <paramref name="depth"/> hops (edges read in both directions), breadth first.</summary>
    public async Task<Neighborhood?> NeighborsAsync(KnowledgeScope scope, Guid id, int depth, CancellationToken ct)
    {
        if (await FindAsync(scope, id, ct) is not { } root) return null;
        var depthOf = new Dictionary<Guid, int> { [id] = 0 };
        var links = new Dictionary<(Guid, Guid, string), GraphLink>();
        var frontier = new List<Guid> { id };
        var truncated = false;
        for (var d = 1; d <= depth && frontier.Count > 0 && !truncated; d++)
        {
            var next = new List<Guid>();
            foreach (var link in await LinksAroundAsync(scope, frontier, ct))
            {
                foreach (var end in new[] { link.Source, link.Target })
                {
                    if (depthOf.ContainsKey(end)) continue;
                    if (depthOf.Count >= MaxNodes)
                    {
                        truncated = true;
                        break;
                    }
                    depthOf[end] = d;
                    next.Add(end);
                }
                if (depthOf.ContainsKey(link.Source) && depthOf.ContainsKey(link.Target)) links[(link.Source, link.Target, link.Relation)] = link;
            }
            frontier = next;
        }

        var nodes = await NodesAsync(scope, depthOf.Keys.Where(k => k != id).ToList(), ct);
        return new Neighborhood(root with { Depth = 0 }, depth,
            nodes.Values.Select(n => n with { Depth = depthOf[n.Id] }).OrderBy(n => n.Depth).ThenByDescending(n => n.MentionCount).ThenBy(n => n.Name, StringComparer.Ordinal).ToList(),
            links.Values.Where(l => nodes.ContainsKey(l.Source) || l.Source == id).Where(l => nodes.ContainsKey(l.Target) || l.Target == id).ToList(), truncated);
    }

    /// <summary>A shortest path (fewest edges; among equals, the heaviest edges are preferred), or null.</summary>
    public async Task<GraphPath?> PathAsync(KnowledgeScope scope, Guid from, Guid to, int maxDepth, CancellationToken ct)
    {
        var start = await FindAsync(scope, from, ct);
        var end = await FindAsync(scope, to, ct);
        if (start is null || end is null) return null;
        if (from == to) return new GraphPath(0, [start], []);
        var parent = new Dictionary<Guid, (Guid Previous, GraphLink Link)>();
        var seen = new HashSet<Guid> { from };
        var frontier = new List<Guid> { from };
        for (var d = 1; d <= maxDepth && frontier.Count > 0 && !seen.Contains(to); d++)
        {
            var next = new List<Guid>();
            var inFrontier = frontier.ToHashSet();
            foreach (var link in await LinksAroundAsync(scope, frontier, ct))
            {
                foreach (var (here, there) in new[] { (link.Source, link.Target), (link.Target, link.Source) })
                {
                    if (!inFrontier.Contains(here) || !seen.Add(there)) continue;
                    parent[there] = (here, link);
                    next.Add(there);
                }
            }
            frontier = next;
        }

        if (!parent.ContainsKey(to)) return null;
        var path = new List<GraphLink>();
        var ids = new List<Guid> { to };
        for (var at = to; at != from; at = parent[at].Previous)
        {
            path.Add(parent[at].Link);
            ids.Add(parent[at].Previous);
        }
        path.Reverse();
        ids.Reverse();
        var nodes = await NodesAsync(scope, ids, ct);
        return new GraphPath(path.Count, ids.Select(i => nodes[i]).ToList(), path);
    }

    /// <summary>
    /// Up to <paramref name="max"/> statements about the entities a question names (matched by normalised name
    /// against every run of up to six words), heaviest relations first — extra context for a grounded reply.
    /// </summary>
    public async Task<List<string>> FactsAsync(KnowledgeScope scope, string question, int max, CancellationToken ct)
    {
        if (max <= 0) return [];
        var text = question.Length > 2000 ? question[..2000] : question;
        var phrases = EntityNames.Phrases(text);
        phrases.UnionWith(RuleBasedEntityExtractor.Extract(text).Entities.Select(e => e.Key.NormalizedName));
        var owners = Owners(scope);
        var list = phrases.ToList();
        var candidates = await db.GraphEntities.AsNoTracking().Where(e => owners.Contains(e.OwnerId) && list.Contains(e.NormalizedName)).Select(e => e.Id).ToListAsync(ct);
        if (candidates.Count == 0) return [];
        var named = await NodesAsync(scope, candidates, ct);
        if (named.Count == 0) return [];
        var links = (await LinksAroundAsync(scope, named.Keys.ToList(), ct)).Take(max).ToList();
        var nodes = await NodesAsync(scope, links.SelectMany(l => new[] { l.Source, l.Target }).Distinct().ToList(), ct);
        return links.Where(l => nodes.ContainsKey(l.Source) && nodes.ContainsKey(l.Target)).Select(l => Fact(nodes[l.Source], l, nodes[l.Target])).ToList();
    }

    public static string Fact(GraphNode source, GraphLink link, GraphNode target) => link.Relation == RelationNames.CoOccurs
        ? $"{source.Name} ({source.Type}) is mentioned together with {target.Name} ({target.Type}) in {link.Weight:0.##} sentence(s)."
        : $"{source.Name} ({source.Type}) —{link.Relation.Replace('_', ' ')}→ {target.Name} ({target.Type}).";

    /// <summary>Visible edges touching any of <paramref name="ids"/>, weights summed over documents, heaviest first.</summary>
    private async Task<List<GraphLink>> LinksAroundAsync(KnowledgeScope scope, List<Guid> ids, CancellationToken ct)
    {
        var visible = VisibleDocuments(scope);
        var rows = await db.GraphEdges.AsNoTracking()
            .Where(e => (ids.Contains(e.SourceId) || ids.Contains(e.TargetId)) && visible.Contains(e.DocumentId))
            .GroupBy(e => new { e.SourceId, e.TargetId, e.Relation })
            .Select(g => new { g.Key.SourceId, g.Key.TargetId, g.Key.Relation, Weight = g.Sum(e => e.Weight) })
            .ToListAsync(ct);
        return rows.Select(r => new GraphLink(r.SourceId, r.TargetId, r.Relation, r.Weight))
            .OrderByDescending(l => l.Weight).ThenBy(l => l.Relation, StringComparer.Ordinal).ThenBy(l => l.Source).ThenBy(l => l.Target).ToList();
    }
}

using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Sutazai.Data;
using Sutazai.Server.Identity;
using Sutazai.Server.Knowledge;

namespace Sutazai.Server.Graph;

public static class GraphApi
{
    public static IEndpointRouteBuilder MapGraphApi(this IEndpointRouteBuilder routes)
    {
        var graph = routes.MapGroup("/api/v1/graph").WithTags("Knowledge graph").RequireAuthorization(ScopePolicies.Knowledge);
        graph.MapGet("/entities", List).WithSummary("Entities named in the documents I may read: q (name contains), type, limit (1–200).");
        graph.MapGet("/entities/{id:guid}", Get).WithSummary("An entity with the documents that mention it and its direct relations.");
        graph.MapGet("/entities/{id:guid}/neighbors", Neighbors).WithSummary("Entities within depth (1–3) hops, with the edges between them.");
        graph.MapGet("/path", Path).WithSummary("A shortest path between two entities (ids or names), at most maxDepth (1–6) edges; 404 when none.");
        return routes;
    }

    private static async Task<Results<Ok<List<GraphNode>>, ProblemHttpResult>> List(HttpContext http, AppDbContext db, GraphQueries graph,
        [FromQuery] string? q, [FromQuery] string? type, [FromQuery] int? limit, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (q is { Length: > 300 }) errors["q"] = ["q must be at most 300 characters."];
        if (type is { Length: > 32 }) errors["type"] = ["type must be at most 32 characters."];
        if (limit is < 1 or > 200) errors["limit"] = ["limit must be between 1 and 200."];
        if (errors.Count > 0) return Problems.Validation(errors);
        var scope = await KnowledgeAccess.ScopeAsync(db, http.User.UserId(), ct);
        return TypedResults.Ok(await graph.ListAsync(scope, q, type?.Trim().ToLowerInvariant(), limit ?? 50, ct));
    }

    private static async Task<Results<Ok<EntityDetail>, ProblemHttpResult>> Get(Guid id, HttpContext http, AppDbContext db, GraphQueries graph, CancellationToken ct)
    {
        var scope = await KnowledgeAccess.ScopeAsync(db, http.User.UserId(), ct);
        return await graph.DetailAsync(scope, id, ct) is { } detail ? TypedResults.Ok(detail) : Problems.NotFound("No entity with that id.");
    }

    private static async Task<Results<Ok<Neighborhood>, ProblemHttpResult>> Neighbors(Guid id, HttpContext http, AppDbContext db, GraphQueries graph, [FromQuery] int? depth, CancellationToken ct)
    {
        if (depth is < 1 or > 3) return Problems.Validation("depth", "depth must be between 1 and 3.");
        var scope = await KnowledgeAccess.ScopeAsync(db, http.User.UserId(), ct);
        return await graph.NeighborsAsync(scope, id, depth ?? 1, ct) is { } hood ? TypedResults.Ok(hood) : Problems.NotFound("No entity with that id.");
    }

    private static async Task<Results<Ok<GraphPath>, ProblemHttpResult>> Path(HttpContext http, AppDbContext db, GraphQueries graph,
        [FromQuery] string? from, [FromQuery] string? to, [FromQuery] int? maxDepth, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrWhiteSpace(from) || from.Length > 300) errors["from"] = ["from must be an entity id or name (1–300 characters)."];
        if (string.IsNullOrWhiteSpace(to) || to.Length > 300) errors["to"] = ["to must be an entity id or name (1–300 characters)."];
        if (maxDepth is < 1 or > 6) errors["maxDepth"] = ["maxDepth must be between 1 and 6."];
        if (errors.Count > 0) return Problems.Validation(errors);
        var scope = await KnowledgeAccess.ScopeAsync(db, http.User.UserId(), ct);
        var start = await graph.ResolveAsync(scope, from!, ct);
        if (start is null) return Problems.NotFound("No entity matches 'from'.");
        var end = await graph.ResolveAsync(scope, to!, ct);
        if (end is null) return Problems.NotFound("No entity matches 'to'.");
        return await graph.PathAsync(scope, start.Id, end.Id, maxDepth ?? 4, ct) is { } path
            ? TypedResults.Ok(path)
            : Problems.NotFound($"No path of at most {maxDepth ?? 4} edges joins these entities.");
    }
}

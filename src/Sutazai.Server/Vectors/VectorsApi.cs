using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Knowledge.Vectors;
using Sutazai.Server.Data;
using Sutazai.Server.Identity;

namespace Sutazai.Server.Vectors;

public sealed record VectorCollectionResponse(string Name, int Dimensions, int Count, DateTime CreatedAt);

public sealed record VectorCollectionsResponse(List<VectorCollectionResponse> Collections);

public sealed record UpsertResponse(string Collection, int Dimensions, int Upserted);

public sealed record VectorResult(string Id, float Score, JsonElement Metadata);

public sealed record VectorSearchResponse(string Collection, List<VectorResult> Results);

/// <summary>
/// The raw vector API (the original SutazAI's, for clients that bring their own embeddings). Collections are per
/// owner: another user's collection of the same name is a different collection and is never visible. Similarity is
/// cosine (1 = same direction).
/// </summary>
public static class VectorsApi
{
    public static IEndpointRouteBuilder MapVectorsApi(this IEndpointRouteBuilder routes)
    {
        var vectors = routes.MapGroup("/api/v1/vectors").WithTags("Vectors").RequireAuthorization(ScopePolicies.Knowledge);
        vectors.MapGet("", ListCollections).WithSummary("My vector collections with their dimension count and number of vectors.");
        vectors.MapPost("/{collection}", Upsert).WithSummary("Upsert {id, vector, metadata} or {points: [...]}; the first vector fixes the collection's dimensions.");
        vectors.MapPost("/{collection}/search", Search).WithSummary("The k nearest vectors (cosine) to {vector}, optionally only those whose metadata matches {filter} exactly.");
        vectors.MapDelete("/{collection}/{id}", Delete).WithSummary("Delete one vector by its id.");
        return routes;
    }

    private static async Task<Ok<VectorCollectionsResponse>> ListCollections(HttpContext http, AppDbContext db, CancellationToken ct)
    {
        var userId = http.User.UserId();
        var collections = await db.VectorCollections.AsNoTracking().Where(c => c.OwnerId == userId).OrderBy(c => c.Name)
            .Select(c => new VectorCollectionResponse(c.Name, c.Dimensions, db.VectorPoints.Count(p => p.CollectionId == c.Id), c.CreatedAt))
            .ToListAsync(ct);
        return TypedResults.Ok(new VectorCollectionsResponse(collections));
    }

    private static async Task<IResult> Upsert(string collection, JsonElement body, HttpContext http, AppDbContext db, RawVectorIndexes indexes, TimeProvider time, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (!VectorRequests.IsValidCollectionName(collection)) errors["collection"] = [CollectionNameRule];
        var points = VectorRequests.ReadPoints(body, errors);
        if (errors.Count > 0) return Problems.Validation(errors);

        var userId = http.User.UserId();
        var owned = await FindAsync(db, userId, collection, ct);
        var dimensions = owned?.Dimensions ?? points[0].Vector.Length;
        foreach (var point in points.Where(p => p.Vector.Length != dimensions))
            errors[point.Field + "vector"] = [owned is null
                ? $"vector has {point.Vector.Length} dimensions but the first vector of this request has {dimensions}."
                : $"vector has {point.Vector.Length} dimensions; collection '{collection}' holds {dimensions}-dimensional vectors."];
        if (errors.Count > 0) return Problems.Validation(errors);

        owned ??= await CreateAsync(db, userId, collection, dimensions, time, ct);
        if (owned.Dimensions != dimensions)
            return Problems.Validation("vector", $"vector has {dimensions} dimensions; collection '{collection}' holds {owned.Dimensions}-dimensional vectors.");

        var store = await indexes.GetAsync(owned, ct);
        var now = time.GetUtcNow().UtcDateTime;
        var ids = points.Select(p => p.Id).ToList();
        await using var transaction = await db.Database.BeginTransactionAsync(ct);
        var existing = await db.VectorPoints.Where(p => p.CollectionId == owned.Id && ids.Contains(p.PointId)).ToDictionaryAsync(p => p.PointId, ct);
        var existingKeys = existing.Values.Select(p => p.Id).ToList();
        if (existingKeys.Count > 0) await db.VectorPointTags.Where(t => existingKeys.Contains(t.PointId)).ExecuteDeleteAsync(ct);
        var records = new List<VectorRecord>(points.Count);
        foreach (var point in points)
        {
            if (!existing.TryGetValue(point.Id, out var row))
            {
                row = new VectorPoint { Id = Guid.NewGuid(), CollectionId = owned.Id, PointId = point.Id, Vector = [], Metadata = "{}" };
                db.VectorPoints.Add(row);
            }
            row.Vector = RawVectors.ToBytes(point.Vector);
            row.Metadata = point.Metadata;
            row.UpdatedAt = now;
            db.VectorPointTags.AddRange(point.Tags.Select(t => new VectorPointTag { PointId = row.Id, Key = t.Key, Value = t.Value }));
            records.Add(new VectorRecord(row.Id, userId, owned.Id, owned.Id, point.Vector));
        }
        await db.SaveChangesAsync(ct);
        // The index is written before the rows commit: a failure here rolls the rows back; a crash after it leaves index
        // entries without rows, which searches skip.
        await store.UpsertAsync(records, ct);
        await transaction.CommitAsync(ct);
        return TypedResults.Ok(new UpsertResponse(collection, owned.Dimensions, points.Count));
    }

    private static async Task<IResult> Search(string collection, JsonElement body, HttpContext http, AppDbContext db, RawVectorIndexes indexes, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (!VectorRequests.IsValidCollectionName(collection)) errors["collection"] = [CollectionNameRule];
        if (body.ValueKind != JsonValueKind.Object) return Problems.Validation("body", "Send {vector, k, filter}.");
        var vector = VectorRequests.ReadVector(body, "vector", errors);
        var k = VectorRequests.ReadK(body, errors);
        var filter = VectorRequests.ReadFilter(body, errors);
        if (errors.Count > 0) return Problems.Validation(errors);

        var owned = await FindAsync(db, http.User.UserId(), collection, ct);
        if (owned is null) return Problems.NotFound($"You have no vector collection named '{collection}'.");
        if (vector!.Length != owned.Dimensions)
            return Problems.Validation("vector", $"vector has {vector.Length} dimensions; collection '{collection}' holds {owned.Dimensions}-dimensional vectors.");

        var ranked = filter.Count == 0
            ? [.. (await (await indexes.GetAsync(owned, ct)).SearchAsync(vector, k!.Value, VectorFilter.Owner(owned.OwnerId, owned.Id), ct)).Select(h => (h.Id, h.Score))]
            : await FilteredExactAsync(db, owned.Id, vector, k!.Value, filter, ct);
        var keys = ranked.Select(r => r.Id).ToList();
        var rows = await db.VectorPoints.AsNoTracking().Where(p => keys.Contains(p.Id))
            .Select(p => new { p.Id, p.PointId, p.Metadata }).ToDictionaryAsync(p => p.Id, ct);
        var results = ranked.Where(r => rows.ContainsKey(r.Id))
            .Select(r => new VectorResult(rows[r.Id].PointId, r.Score, JsonDocument.Parse(rows[r.Id].Metadata).RootElement.Clone())).ToList();
        return TypedResults.Ok(new VectorSearchResponse(collection, results));
    }

    /// <summary>
    /// A filtered search: SQL selects the points whose metadata matches every filter pair (tag index), then their
    /// vectors are ranked exactly — the filter applies before ranking, so k matches come back whenever k exist.
    /// </summary>
    private static async Task<List<(Guid Id, float Score)>> FilteredExactAsync(AppDbContext db, Guid collectionId, float[] query, int k,
        List<(string Key, string Value)> filter, CancellationToken ct)
    {
        var points = db.VectorPoints.AsNoTracking().Where(p => p.CollectionId == collectionId);
        foreach (var (key, value) in filter)
            points = points.Where(p => db.VectorPointTags.Any(t => t.PointId == p.Id && t.Key == key && t.Value == value));
        var best = new PriorityQueue<(Guid Id, float Score), (float, Guid)>(Comparer<(float Score, Guid Id)>.Create(
            (a, b) => a.Score != b.Score ? a.Score.CompareTo(b.Score) : b.Id.CompareTo(a.Id)));
        await foreach (var row in points.Select(p => new { p.Id, p.Vector }).AsAsyncEnumerable().WithCancellation(ct))
        {
            var score = Cosine(query, RawVectors.FromBytes(row.Vector));
            best.Enqueue((row.Id, score), (score, row.Id));
            if (best.Count > k) best.Dequeue();
        }
        // The queue holds the k best with the worst on top: drain it and turn it round.
        var ranked = new List<(Guid Id, float Score)>(best.Count);
        while (best.Count > 0) ranked.Add(best.Dequeue());
        ranked.Reverse();
        return ranked;
    }

    private static async Task<IResult> Delete(string collection, string id, HttpContext http, AppDbContext db, RawVectorIndexes indexes, CancellationToken ct)
    {
        var owned = await FindAsync(db, http.User.UserId(), collection, ct);
        if (owned is null) return Problems.NotFound($"You have no vector collection named '{collection}'.");
        var row = await db.VectorPoints.AsNoTracking().Where(p => p.CollectionId == owned.Id && p.PointId == id).Select(p => (Guid?)p.Id).FirstOrDefaultAsync(ct);
        if (row is not { } key) return Problems.NotFound($"Collection '{collection}' has no vector with id '{id}'.");
        await db.VectorPoints.Where(p => p.Id == key).ExecuteDeleteAsync(ct);
        // After the row is gone a search can no longer return it even if the index still holds it.
        await (await indexes.GetAsync(owned, ct)).DeleteAsync([key], ct);
        return TypedResults.NoContent();
    }

    private const string CollectionNameRule = "A collection name is 1 to 100 letters, digits, '_', '.' or '-', starting with a letter or digit.";

    private static Task<VectorCollection?> FindAsync(AppDbContext db, Guid userId, string name, CancellationToken ct) =>
        db.VectorCollections.AsNoTracking().FirstOrDefaultAsync(c => c.OwnerId == userId && c.Name == name, ct);

    private static async Task<VectorCollection> CreateAsync(AppDbContext db, Guid userId, string name, int dimensions, TimeProvider time, CancellationToken ct)
    {
        var created = new VectorCollection { Id = Guid.NewGuid(), OwnerId = userId, Name = name, Dimensions = dimensions, CreatedAt = time.GetUtcNow().UtcDateTime };
        db.VectorCollections.Add(created);
        try
        {
            await db.SaveChangesAsync(ct);
            return created;
        }
        catch (DbUpdateException e) when (DbErrors.IsUniqueViolation(e))
        {
            // A concurrent request created it first: use that one (its dimension count is checked by the caller).
            db.Entry(created).State = EntityState.Detached;
            return await FindAsync(db, userId, name, ct) ?? throw new InvalidOperationException($"Vector collection '{name}' vanished after a conflicting insert.");
        }
    }

    private static float Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (var i = 0; i < a.Length; i++)
        {
            dot += (double)a[i] * b[i];
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }
        return na == 0 || nb == 0 ? 0f : (float)(dot / Math.Sqrt(na * nb));
    }
}

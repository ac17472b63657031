using System.Security.Cryptography;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Knowledge.Extraction;
using Sutazai.Server.Identity;
using Sutazai.Server.Inference;

namespace Sutazai.Server.Knowledge;

public static class KnowledgeApi
{
    public static IEndpointRouteBuilder MapKnowledgeApi(this IEndpointRouteBuilder routes)
    {
        var documents = routes.MapGroup("/api/v1/documents").WithTags("Documents").RequireAuthorization(ScopePolicies.Knowledge);
        documents.MapPost("", Upload).DisableAntiforgery().WithMetadata(new UploadLimitMetadata())
            .WithSummary("Upload files (multipart, field 'file', repeatable; optional 'collectionId') → 202, ingested in the background.");
        documents.MapPost("/url", UrlIngestion.IngestAsync).WithSummary("Fetch a web page or file (SSRF-guarded) and ingest it like an upload.");
        documents.MapGet("", ListDocuments).WithSummary("My documents, newest first.");
        documents.MapGet("/{id:guid}", GetDocument).WithSummary("A document and its ingestion status; SSE status events with Accept: text/event-stream.");
        documents.MapDelete("/{id:guid}", DeleteDocument).WithSummary("Delete a document with its chunks, vectors and file.");

        var collections = routes.MapGroup("/api/v1/collections").WithTags("Documents").RequireAuthorization(ScopePolicies.Knowledge);
        collections.MapPost("", CreateCollection);
        collections.MapGet("", ListCollections).WithSummary("My collections and those shared with me.");
        collections.MapPatch("/{id:guid}", UpdateCollection).WithSummary("Rename or change sharing (owner only).");
        collections.MapDelete("/{id:guid}", DeleteCollection).WithSummary("Delete a collection (its documents stay, without collection).");

        routes.MapGet("/api/v1/search", Search).WithTags("Documents").RequireAuthorization(ScopePolicies.Knowledge)
            .WithSummary("Ranked chunks: mode=hybrid (default, BM25 + vectors fused by RRF), vector or keyword.");
        return routes;
    }

    /// <summary>Marks the upload endpoint so the global body limit gives way to Sutazai:Knowledge:MaxUploadBytes.</summary>
    public sealed class UploadLimitMetadata;

    private static async Task<IResult> Upload(HttpContext http, AppDbContext db, DocumentStorage storage, IngestionWorker worker, IOptions<KnowledgeOptions> options, TimeProvider time, CancellationToken ct)
    {
        if (!http.Request.HasFormContentType)
            return Problems.Status(StatusCodes.Status415UnsupportedMediaType, "Unsupported Media Type", "Send multipart/form-data with one or more 'file' fields.");
        var form = await http.Request.ReadFormAsync(ct);
        var files = form.Files.GetFiles("file");
        if (files.Count == 0) return Problems.Validation("file", "Attach at least one file in a 'file' field.");
        var userId = http.User.UserId();
        Guid? collectionId = null;
        if (form.TryGetValue("collectionId", out var rawCollection) && rawCollection.Count > 0 && !string.IsNullOrEmpty(rawCollection[0]))
        {
            if (!Guid.TryParse(rawCollection[0], out var parsed) || !await db.Collections.AnyAsync(c => c.Id == parsed && c.OwnerId == userId, ct))
                return Problems.Validation("collectionId", "collectionId must be one of your collections.");
            collectionId = parsed;
        }

        var limit = options.Value.MaxUploadBytes;
        var accepted = new List<DocumentResponse>();
        foreach (var file in files)
        {
            switch (await DocumentIntake.AcceptFileAsync(db, storage, time, limit, userId, collectionId, file.FileName, file.Length, file.OpenReadStream, ct))
            {
                case DocumentIntake.FileOutcome.Accepted a:
                    accepted.Add(a.Document);
                    break;
                case DocumentIntake.FileOutcome.Rejected r:
                    return Problems.Status(r.Status, Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(r.Status), r.Detail);
            }
        }
        worker.Notify();
        return TypedResults.Accepted((string?)null, new UploadResponse(accepted));
    }

    private static async Task<Ok<PagedResponse<DocumentResponse>>> ListDocuments(HttpContext http, AppDbContext db, Guid? collectionId = null, int page = 1, int pageSize = 50, CancellationToken ct = default)
    {
        page = Math.Max(1, page);
        pageSize = Math.Clamp(pageSize, 1, 200);
        var userId = http.User.UserId();
        var query = db.Documents.AsNoTracking().Where(d => d.OwnerId == userId && (collectionId == null || d.CollectionId == collectionId));
        var total = await query.CountAsync(ct);
        var items = await query.OrderByDescending(d => d.CreatedAt).Skip((page - 1) * pageSize).Take(pageSize).ToListAsync(ct);
        return TypedResults.Ok(new PagedResponse<DocumentResponse>(items.Select(d => DocumentResponse.From(d)).ToList(), total, page, pageSize));
    }

    private static async Task<IResult> GetDocument(Guid id, HttpContext http, AppDbContext db, CancellationToken ct)
    {
        var scope = await KnowledgeAccess.ScopeAsync(db, http.User.UserId(), ct);
        var document = await KnowledgeAccess.Visible(db, scope).AsNoTracking().FirstOrDefaultAsync(d => d.Id == id, ct);
        if (document is null) return Problems.NotFound("No document with that id.");
        if (!ServerSentEvents.Wanted(http.Request)) return TypedResults.Ok(DocumentResponse.From(document));

        // Status events until the document is indexed or failed (read from the database, so any node's worker counts).
        var sse = new ServerSentEvents(http.Response);
        sse.Start();
        var last = "";
        while (!http.RequestAborted.IsCancellationRequested)
        {
            var current = await db.Documents.AsNoTracking().FirstOrDefaultAsync(d => d.Id == id, http.RequestAborted);
            if (current is null) break;
            var key = $"{current.Status}/{current.ChunksEmbedded}/{current.ChunkCount}";
            if (key != last)
            {
                await sse.WriteAsync(current.Status, DocumentResponse.From(current), http.RequestAborted);
                last = key;
            }
            if (current.Status is DocumentStatus.Indexed or DocumentStatus.Failed) break;
            await Task.Delay(200, http.RequestAborted);
        }
        return Results.Empty;
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteDocument(Guid id, HttpContext http, AppDbContext db, DocumentStorage storage, IngestionWorker worker, CancellationToken ct)
    {
        var userId = http.User.UserId();
        if (!await db.Documents.AnyAsync(d => d.Id == id && d.OwnerId == userId, ct)) return Problems.NotFound("No document with that id.");
        await worker.RemoveChunksAsync(db, id, ct);
        await db.Documents.Where(d => d.Id == id).ExecuteDeleteAsync(ct);
        storage.Delete(id);
        return TypedResults.NoContent();
    }

    private static Dictionary<string, string[]> ValidateCollection(CollectionRequest request, bool creating)
    {
        var errors = new Dictionary<string, string[]>();
        if (creating && string.IsNullOrWhiteSpace(request.Name)) errors["name"] = ["Name is required."];
        if (request.Name is { Length: > 100 }) errors["name"] = ["Name must be at most 100 characters."];
        if (request.Description is { Length: > 1000 }) errors["description"] = ["Description must be at most 1000 characters."];
        return errors;
    }

    private static async Task<CollectionResponse> ToResponseAsync(AppDbContext db, KnowledgeCollection c, Guid userId, CancellationToken ct) =>
        new(c.Id, c.OwnerId, c.Name, c.Description, c.SharedWithAll,
            c.OwnerId == userId ? await db.CollectionShares.Where(s => s.CollectionId == c.Id).Select(s => s.UserId).ToListAsync(ct) : [],
            await db.Documents.CountAsync(d => d.CollectionId == c.Id, ct), c.CreatedAt, c.OwnerId == userId);

    private static async Task<Results<Created<CollectionResponse>, ProblemHttpResult>> CreateCollection(CollectionRequest request, HttpContext http, AppDbContext db, TimeProvider time, CancellationToken ct)
    {
        var errors = ValidateCollection(request, creating: true);
        if (errors.Count > 0) return Problems.Validation(errors);
        var userId = http.User.UserId();
        var name = request.Name!.Trim();
        if (await db.Collections.AnyAsync(c => c.OwnerId == userId && c.Name == name, ct)) return Problems.Conflict("You already have a collection with that name.");
        var collection = new KnowledgeCollection { Id = Guid.NewGuid(), OwnerId = userId, Name = name, Description = request.Description, SharedWithAll = request.SharedWithAll ?? false, CreatedAt = time.GetUtcNow().UtcDateTime };
        db.Collections.Add(collection);
        if (await ShareAsync(db, collection, request.SharedWithUserIds, ct) is { } problem) return problem;
        await db.SaveChangesAsync(ct);
        return TypedResults.Created($"/api/v1/collections/{collection.Id}", await ToResponseAsync(db, collection, userId, ct));
    }

    private static async Task<ProblemHttpResult?> ShareAsync(AppDbContext db, KnowledgeCollection collection, List<Guid>? userIds, CancellationToken ct)
    {
        if (userIds is null) return null;
        var wanted = userIds.Where(u => u != collection.OwnerId).Distinct().ToList();
        var known = await db.Users.Where(u => wanted.Contains(u.Id)).Select(u => u.Id).ToListAsync(ct);
        if (known.Count != wanted.Count) return Problems.Validation("sharedWithUserIds", "Every id must name an existing user.");
        await db.CollectionShares.Where(s => s.CollectionId == collection.Id).ExecuteDeleteAsync(ct);
        db.CollectionShares.AddRange(wanted.Select(u => new CollectionShare { CollectionId = collection.Id, UserId = u }));
        return null;
    }

    private static async Task<Ok<List<CollectionResponse>>> ListCollections(HttpContext http, AppDbContext db, CancellationToken ct)
    {
        var userId = http.User.UserId();
        var list = await db.Collections.AsNoTracking()
            .Where(c => c.OwnerId == userId || c.SharedWithAll || db.CollectionShares.Any(s => s.CollectionId == c.Id && s.UserId == userId))
            .OrderBy(c => c.Name).ToListAsync(ct);
        var result = new List<CollectionResponse>();
        foreach (var c in list) result.Add(await ToResponseAsync(db, c, userId, ct));
        return TypedResults.Ok(result);
    }

    private static async Task<Results<Ok<CollectionResponse>, ProblemHttpResult>> UpdateCollection(Guid id, CollectionRequest request, HttpContext http, AppDbContext db, CancellationToken ct)
    {
        var errors = ValidateCollection(request, creating: false);
        if (errors.Count > 0) return Problems.Validation(errors);
        var userId = http.User.UserId();
        var collection = await db.Collections.FirstOrDefaultAsync(c => c.Id == id && c.OwnerId == userId, ct);
        if (collection is null) return Problems.NotFound("No collection with that id.");
        if (!string.IsNullOrWhiteSpace(request.Name)) collection.Name = request.Name.Trim();
        if (request.Description is not null) collection.Description = request.Description.Length == 0 ? null : request.Description;
        if (request.SharedWithAll is { } all) collection.SharedWithAll = all;
        if (await ShareAsync(db, collection, request.SharedWithUserIds, ct) is { } problem) return problem;
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(await ToResponseAsync(db, collection, userId, ct));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteCollection(Guid id, HttpContext http, AppDbContext db, CancellationToken ct)
    {
        var userId = http.User.UserId();
        if (!await db.Collections.AnyAsync(c => c.Id == id && c.OwnerId == userId, ct)) return Problems.NotFound("No collection with that id.");
        await db.Documents.Where(d => d.CollectionId == id).ExecuteUpdateAsync(s => s.SetProperty(d => d.CollectionId, (Guid?)null), ct);
        await db.Chunks.Where(c => c.CollectionId == id).ExecuteUpdateAsync(s => s.SetProperty(c => c.CollectionId, (Guid?)null), ct);
        await db.Collections.Where(c => c.Id == id).ExecuteDeleteAsync(ct);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<List<SearchResult>>, ProblemHttpResult>> Search(HttpContext http, KnowledgeSearch search, [FromQuery] string? q, [FromQuery] Guid? collection, [FromQuery] int? k, [FromQuery] string? mode, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrWhiteSpace(q) || q.Length > 1000) errors["q"] = ["Give a query of 1 to 1000 characters."];
        if (k is < 1 or > 100) errors["k"] = ["k must be between 1 and 100."];
        var m = (mode ?? "hybrid").ToLowerInvariant();
        if (m is not ("hybrid" or "vector" or "keyword")) errors["mode"] = ["mode must be hybrid, vector or keyword."];
        if (errors.Count > 0) return Problems.Validation(errors);
        return TypedResults.Ok(await search.SearchAsync(http.User.UserId(), q!, collection, k ?? 10, m, ct));
    }
}

using System.Security.Cryptography;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Knowledge.Extraction;
using Sutazai.Server.Hosting;
using Sutazai.Server.Identity;
using Sutazai.Server.Inference;

namespace Sutazai.Server.Knowledge;

public static class KnowledgeApi
{
    public static IEndpointRouteBuilder MapKnowledgeApi(this IEndpointRouteBuilder routes)
    {
        var documents = routes.MapGroup("/api/v1/documents").WithTags("Documents").RequireAuthorization(ScopePolicies.Knowledge);
        documents.MapPost("", Upload).RequireRateLimiting(ServiceDefaults.ExpensiveRateLimitPolicy).DisableAntiforgery().WithMetadata(new UploadLimitMetadata())
            .WithSummary("Upload files (multipart, field 'file', repeatable; optional 'collectionId') → 202, ingested in the background.");
        documents.MapPost("/url", UrlIngestion.IngestAsync).RequireRateLimiting(ServiceDefaults.ExpensiveRateLimitPolicy).WithSummary("Fetch a web page or file (SSRF-guarded) and ingest it like an upload.");
        documents.MapGet("", ListDocuments).WithSummary("My documents, newest first.");
        documents.MapGet("/{id:guid}", GetDocument).WithSummary("A document and its ingestion status; SSE status events with Accept: text/event-stream.");
        documents.MapDelete("/{id:guid}", DeleteDocument).WithSummary("Delete a document with its chunks, vectors and file.");

        var collections = routes.MapGroup("/api/v1/collections").WithTags("Documents").RequireAuthorization(ScopePolicies.Knowledge);
        collections.MapPost("", CreateCollection).WithSummary("Create a collection; sharedWithAll only for administrators (403 otherwise).");
        collections.MapGet("", ListCollections).WithSummary("My collections and those shared with me.");
        collections.MapPatch("/{id:guid}", UpdateCollection).WithSummary("Rename or change sharing (owner only; turning sharedWithAll on only for administrators).");
        collections.MapDelete("/{id:guid}", DeleteCollection).WithSummary("Delete a collection (its documents stay, without collection).");

        routes.MapGet("/api/v1/search", Search).WithTags("Documents").RequireAuthorization(ScopePolicies.Knowledge)
            .WithSummary("Ranked chunks: mode=hybrid (default, BM25 + vectors fused by RRF), vector or keyword.");
        return routes;
    }

    /// <summary>Marks the upload endpoint so the global body limit gives way to Sutazai:Knowledge:MaxUploadBytes.</summary>
    public sealed class UploadLimitMetadata;

    private static async Task<IResult> Upload(HttpContext http, AppDbContext db, DocumentService documents, CancellationToken ct)
    {
        if (!http.Request.HasFormContentType)
            return Problems.Status(StatusCodes.Status415UnsupportedMediaType, "Unsupported Media Type", "Send multipart/form-data with one or more 'file' fields.");
        var form = await http.Request.ReadFormCheckedAsync(ct);
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

        var accepted = new List<DocumentResponse>();
        foreach (var file in files)
        {
            switch (await documents.AddFileAsync(userId, collectionId, file.FileName, file.Length, file.OpenReadStream, ct))
            {
                case DocumentIntake.FileOutcome.Accepted a:
                    accepted.Add(a.Document);
                    break;
                case DocumentIntake.FileOutcome.Rejected r:
                    return RefusalProblem(r);
            }
        }
        return TypedResults.Accepted((string?)null, new UploadResponse(accepted));
    }

    private static async Task<Ok<PagedResponse<DocumentResponse>>> ListDocuments(HttpContext http, DocumentService documents, Guid? collectionId = null, int page = 1, int pageSize = 50, CancellationToken ct = default)
    {
        page = Math.Max(1, page);
        pageSize = Math.Clamp(pageSize, 1, 200);
        var (items, total) = await documents.ListAsync(http.User.UserId(), collectionId, page, pageSize, ct);
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

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteDocument(Guid id, HttpContext http, DocumentService documents, CancellationToken ct) =>
        await documents.DeleteAsync(http.User.UserId(), id, ct) ? TypedResults.NoContent() : Problems.NotFound("No document with that id.");

    private static ProblemHttpResult Problem(CollectionOutcome outcome) => outcome switch
    {
        CollectionOutcome.Invalid invalid => Problems.Validation(invalid.Errors),
        CollectionOutcome.Forbidden forbidden => Problems.Forbidden(forbidden.Detail),
        CollectionOutcome.Conflict conflict => Problems.Conflict(conflict.Detail),
        CollectionOutcome.NotFound => Problems.NotFound("No collection with that id."),
        _ => throw new InvalidOperationException($"No problem for {outcome}."),
    };

    private static async Task<Results<Created<CollectionResponse>, ProblemHttpResult>> CreateCollection(CollectionRequest request, HttpContext http, CollectionService collections, CancellationToken ct)
    {
        var outcome = await collections.CreateAsync(http.User.UserId(), http.User.IsInRole(Roles.Admin), request, ct);
        return outcome is CollectionOutcome.Saved saved ? TypedResults.Created($"/api/v1/collections/{saved.Collection.Id}", saved.Collection) : Problem(outcome);
    }

    private static async Task<Ok<List<CollectionResponse>>> ListCollections(HttpContext http, CollectionService collections, CancellationToken ct) =>
        TypedResults.Ok(await collections.ListAsync(http.User.UserId(), ct));

    private static async Task<Results<Ok<CollectionResponse>, ProblemHttpResult>> UpdateCollection(Guid id, CollectionRequest request, HttpContext http, CollectionService collections, CancellationToken ct)
    {
        var outcome = await collections.UpdateAsync(http.User.UserId(), http.User.IsInRole(Roles.Admin), id, request, ct);
        return outcome is CollectionOutcome.Saved saved ? TypedResults.Ok(saved.Collection) : Problem(outcome);
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteCollection(Guid id, HttpContext http, CollectionService collections, CancellationToken ct) =>
        await collections.DeleteAsync(http.User.UserId(), id, ct) ? TypedResults.NoContent() : Problems.NotFound("No collection with that id.");

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

    /// <summary>The one mapping of a refused file to its ProblemDetails.</summary>
    internal static ProblemHttpResult RefusalProblem(DocumentIntake.FileOutcome.Rejected rejected)
    {
        var status = rejected.Reason switch
        {
            DocumentIntake.FileRefusal.TooLarge => StatusCodes.Status413PayloadTooLarge,
            DocumentIntake.FileRefusal.UnsupportedType => StatusCodes.Status415UnsupportedMediaType,
            _ => StatusCodes.Status507InsufficientStorage,
        };
        return Problems.Status(status, Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status), rejected.Detail);
    }
}

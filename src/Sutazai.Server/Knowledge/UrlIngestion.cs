using System.Net;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Knowledge.Extraction;
using Sutazai.Knowledge.Web;
using Sutazai.Server.Identity;

namespace Sutazai.Server.Knowledge;

public sealed record UrlRequest(string? Url, Guid? CollectionId);

/// <summary>POST /api/v1/documents/url: fetch a page or file through the SSRF guard and queue it like an upload.</summary>
public static class UrlIngestion
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public static async Task<IResult> IngestAsync(UrlRequest request, HttpContext http, AppDbContext db, DocumentStorage storage, IngestionWorker worker,
        SsrfGuard guard, IOptions<KnowledgeOptions> options, IOptions<Configuration.QuotaOptions> quotas, TimeProvider time, CancellationToken ct)
    {
        if (!GuardedFetch.TryParseUrl(request.Url, out var url))
            return Problems.Validation("url", "Give an absolute http(s) URL without credentials.");
        var userId = http.User.UserId();
        if (request.CollectionId is { } cid && !await db.Collections.AnyAsync(c => c.Id == cid && c.OwnerId == userId, ct))
            return Problems.Validation("collectionId", "collectionId must be one of your collections.");

        FetchedContent fetched;
        try
        {
            fetched = await GuardedFetch.GetAsync(guard, url, options.Value.MaxUploadBytes, Timeout, "SutazAI/1.0 (+document ingestion)", ct);
        }
        catch (FetchException ex)
        {
            // The URL is the client's input: one that cannot be fetched (no such host, refused, an error page, too
            // slow) is a 422 on `url` saying why, not a server error; this server and its backends are fine.
            return ex.Failure == FetchFailure.TooLarge
                ? Problems.Status(StatusCodes.Status413PayloadTooLarge, "Payload Too Large", ex.Message)
                : Problems.Validation("url", ex.Message);
        }
        url = fetched.Url;
        var content = fetched.Content;
        var contentType = fetched.ContentType;

        var name = GuardedFetch.NameFor(url, contentType);
        var detection = DocumentTypeDetector.Detect(name, content.AsSpan(0, Math.Min(content.Length, DocumentTypeDetector.HeadLength)));
        if (!detection.IsAccepted)
            return Problems.Status(StatusCodes.Status415UnsupportedMediaType, "Unsupported Media Type", $"{url}: {detection.RejectionReason}");

        var sha = Convert.ToHexStringLower(SHA256.HashData(content));
        var outcome = await DocumentIntake.AcceptAsync(db, storage, time, quotas.Value.StorageBytesPerUser, userId, request.CollectionId, name, detection.Kind!.Value,
            content.Length, sha, () => new MemoryStream(content), url.ToString(), ct);
        if (outcome is DocumentIntake.FileOutcome.Rejected rejected) return KnowledgeApi.RefusalProblem(rejected);
        var accepted = ((DocumentIntake.FileOutcome.Accepted)outcome).Document;
        if (accepted.DuplicateOf is null) await worker.QueueAsync(accepted.Id, ct);
        return TypedResults.Accepted((string?)null, new UploadResponse([accepted]));
    }
}

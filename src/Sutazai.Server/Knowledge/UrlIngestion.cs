using System.Net;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Knowledge.Extraction;
using Sutazai.Server.Identity;

namespace Sutazai.Server.Knowledge;

public sealed record UrlRequest(string? Url, Guid? CollectionId);

/// <summary>POST /api/v1/documents/url: fetch a page or file through the SSRF guard and queue it like an upload.</summary>
public static class UrlIngestion
{
    public const int MaxRedirects = 5;
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public static async Task<IResult> IngestAsync(UrlRequest request, HttpContext http, AppDbContext db, DocumentStorage storage, IngestionWorker worker,
        SsrfGuard guard, IOptions<KnowledgeOptions> options, TimeProvider time, CancellationToken ct)
    {
        if (!Uri.TryCreate(request.Url?.Trim(), UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https") || url.UserInfo.Length > 0)
            return Problems.Validation("url", "Give an absolute http(s) URL without credentials.");
        var userId = http.User.UserId();
        if (request.CollectionId is { } cid && !await db.Collections.AnyAsync(c => c.Id == cid && c.OwnerId == userId, ct))
            return Problems.Validation("collectionId", "collectionId must be one of your collections.");

        var limit = options.Value.MaxUploadBytes;
        byte[] content;
        string? contentType;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(Timeout);
        using var client = new HttpClient(guard.CreateHandler()) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
        client.DefaultRequestHeaders.UserAgent.ParseAdd("SutazAI/1.0 (+document ingestion)");
        try
        {
            var current = url;
            for (var hop = 0; ; hop++)
            {
                using var response = await client.GetAsync(current, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
                if ((int)response.StatusCode is >= 300 and < 400 && response.Headers.Location is { } location)
                {
                    if (hop >= MaxRedirects) return Problems.Status(StatusCodes.Status502BadGateway, "Bad Gateway", $"{url} redirected more than {MaxRedirects} times.");
                    current = location.IsAbsoluteUri ? location : new Uri(current, location);
                    if (current.Scheme is not ("http" or "https")) return Problems.Validation("url", $"{url} redirects to a non-http(s) URL.");
                    continue;
                }
                if (!response.IsSuccessStatusCode)
                    return Problems.Status(StatusCodes.Status502BadGateway, "Bad Gateway", $"{current} answered HTTP {(int)response.StatusCode}.");
                if (response.Content.Headers.ContentLength > limit)
                    return Problems.Status(StatusCodes.Status413PayloadTooLarge, "Payload Too Large", $"{current} is {response.Content.Headers.ContentLength} bytes; the limit is {limit} bytes.");
                contentType = response.Content.Headers.ContentType?.MediaType;
                await using var body = await response.Content.ReadAsStreamAsync(timeout.Token);
                using var buffer = new MemoryStream();
                var chunk = new byte[81920];
                int read;
                while ((read = await body.ReadAsync(chunk, timeout.Token)) > 0)
                {
                    if (buffer.Length + read > limit)
                        return Problems.Status(StatusCodes.Status413PayloadTooLarge, "Payload Too Large", $"{current} is larger than the {limit}-byte limit.");
                    buffer.Write(chunk, 0, read);
                }
                content = buffer.ToArray();
                url = current;
                break;
            }
        }
        catch (HttpRequestException ex) when (ex.InnerException is BlockedAddressException blocked)
        {
            return Problems.Validation("url", blocked.Message);
        }
        catch (HttpRequestException ex)
        {
            return Problems.Status(StatusCodes.Status502BadGateway, "Bad Gateway", $"{url} could not be fetched: {ex.Message}");
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return Problems.Status(StatusCodes.Status504GatewayTimeout, "Gateway Timeout", $"{url} did not answer within {Timeout.TotalSeconds:F0} seconds.");
        }

        var name = NameFor(url, contentType);
        var detection = DocumentTypeDetector.Detect(name, content.AsSpan(0, Math.Min(content.Length, DocumentTypeDetector.HeadLength)));
        if (!detection.IsAccepted)
            return Problems.Status(StatusCodes.Status415UnsupportedMediaType, "Unsupported Media Type", $"{url}: {detection.RejectionReason}");

        var sha = Convert.ToHexStringLower(SHA256.HashData(content));
        var accepted = await DocumentIntake.AcceptAsync(db, storage, time, userId, request.CollectionId, name, detection.Kind!.Value,
            content.Length, sha, () => new MemoryStream(content), url.ToString(), ct);
        worker.Notify();
        return TypedResults.Accepted((string?)null, new UploadResponse([accepted]));
    }

    /// <summary>A display name with an extension that matches what the server sent.</summary>
    private static string NameFor(Uri url, string? contentType)
    {
        var last = Uri.UnescapeDataString(url.Segments.LastOrDefault()?.Trim('/') ?? "");
        var name = last.Length > 0 ? last : url.Host;
        string? extension = contentType switch
        {
            "text/html" or "application/xhtml+xml" => ".html",
            "application/pdf" => ".pdf",
            "text/markdown" => ".md",
            "text/plain" => ".txt",
            "application/json" => ".json",
            "text/csv" => ".csv",
            _ => null,
        };
        return extension is not null && !name.EndsWith(extension, StringComparison.OrdinalIgnoreCase) && !(extension == ".html" && name.EndsWith(".htm", StringComparison.OrdinalIgnoreCase))
            ? name + extension
            : name;
    }
}

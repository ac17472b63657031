namespace Sutazai.Knowledge.Web;

/// <summary>A downloaded response body and the URL it finally came from (after redirects).</summary>
public sealed record FetchedContent(Uri Url, byte[] Content, string? ContentType);

public enum FetchFailure { Blocked, NotHttp, TooManyRedirects, HttpStatus, TooLarge, Timeout, Unreachable }

/// <summary>Why a guarded fetch failed; the message is safe to show to the user.</summary>
public sealed class FetchException(FetchFailure failure, string message) : Exception(message)
{
    public FetchFailure Failure { get; } = failure;
}

/// <summary>
/// The one way the server fetches a URL a user (or a model) gave: through <see cref="SsrfGuard"/>'s connection check,
/// following at most <see cref="MaxRedirects"/> http(s) redirects itself (each hop checked again), with a size cap and a
/// deadline. Used by URL ingestion and the agents' web_fetch tool.
/// </summary>
public static class GuardedFetch
{
    public const int MaxRedirects = 5;

    /// <summary>Whether <paramref name="text"/> is an absolute http(s) URL without credentials.</summary>
    public static bool TryParseUrl(string? text, out Uri url) =>
        Uri.TryCreate(text?.Trim(), UriKind.Absolute, out url!) && url.Scheme is "http" or "https" && url.UserInfo.Length == 0;

    public static async Task<FetchedContent> GetAsync(SsrfGuard guard, Uri url, long maxBytes, TimeSpan timeout, string userAgent, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        using var client = new HttpClient(guard.CreateHandler()) { Timeout = Timeout.InfiniteTimeSpan };
        client.DefaultRequestHeaders.UserAgent.ParseAdd(userAgent);
        var current = url;
        try
        {
            for (var hop = 0; ; hop++)
            {
                using var response = await client.GetAsync(current, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
                if ((int)response.StatusCode is >= 300 and < 400 && response.Headers.Location is { } location)
                {
                    if (hop >= MaxRedirects) throw new FetchException(FetchFailure.TooManyRedirects, $"{url} redirected more than {MaxRedirects} times.");
                    current = location.IsAbsoluteUri ? location : new Uri(current, location);
                    if (current.Scheme is not ("http" or "https")) throw new FetchException(FetchFailure.NotHttp, $"{url} redirects to a non-http(s) URL.");
                    continue;
                }
                if (!response.IsSuccessStatusCode)
                    throw new FetchException(FetchFailure.HttpStatus, $"{current} answered HTTP {(int)response.StatusCode}.");
                if (response.Content.Headers.ContentLength > maxBytes)
                    throw new FetchException(FetchFailure.TooLarge, $"{current} is {response.Content.Headers.ContentLength} bytes; the limit is {maxBytes} bytes.");
                var contentType = response.Content.Headers.ContentType?.MediaType;
                await using var body = await response.Content.ReadAsStreamAsync(deadline.Token);
                using var buffer = new MemoryStream();
                var chunk = new byte[81920];
                int read;
                while ((read = await body.ReadAsync(chunk, deadline.Token)) > 0)
                {
                    if (buffer.Length + read > maxBytes) throw new FetchException(FetchFailure.TooLarge, $"{current} is larger than the {maxBytes}-byte limit.");
                    buffer.Write(chunk, 0, read);
                }
                return new FetchedContent(current, buffer.ToArray(), contentType);
            }
        }
        catch (HttpRequestException ex) when (ex.InnerException is BlockedAddressException blocked)
        {
            throw new FetchException(FetchFailure.Blocked, blocked.Message);
        }
        catch (HttpRequestException ex)
        {
            throw new FetchException(FetchFailure.Unreachable, $"{url} could not be fetched: {ex.Message}");
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new FetchException(FetchFailure.Timeout, $"{url} did not answer within {timeout.TotalSeconds:F0} seconds.");
        }
    }

    /// <summary>A display name with an extension that matches what the server sent.</summary>
    public static string NameFor(Uri url, string? contentType)
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

using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace Sutazai.Inference.Providers;

/// <summary>Small HTTP helpers shared by the Ollama and OpenAI-compatible providers.</summary>
internal static class ProviderHttp
{
    /// <summary>How long a health check or start-up probe waits for an answer.</summary>
    internal static readonly TimeSpan HealthTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Parses a configured server address; it must be an absolute http(s) URL. The result ends with '/'.</summary>
    internal static Uri ParseBaseUrl(string? url, string fallback, string setting)
    {
        var text = string.IsNullOrWhiteSpace(url) ? fallback : url.Trim();
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException($"{setting} '{text}' is not an absolute http:// or https:// URL.", setting);
        }

        return WithTrailingSlash(uri);
    }

    internal static Uri WithTrailingSlash(Uri uri)
    {
        var text = uri.GetLeftPart(UriPartial.Path);
        return text.EndsWith('/') ? new Uri(text) : new Uri(text + "/");
    }

    /// <summary>The address as people write it: no trailing slash.</summary>
    internal static string Display(Uri baseUri) => baseUri.ToString().TrimEnd('/');

    internal static void ValidateTimeout(TimeSpan timeout, string setting)
    {
        if (timeout != Timeout.InfiniteTimeSpan && timeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(setting, timeout, $"{setting} must be positive (or Timeout.InfiniteTimeSpan).");
        }
    }

    /// <summary>The most specific message in an exception chain, e.g. "Connection refused (127.0.0.1:11434)".</summary>
    internal static string Describe(Exception exception)
    {
        var innermost = exception;
        while (innermost.InnerException is not null)
        {
            innermost = innermost.InnerException;
        }

        if (innermost is SocketException socket && exception is HttpRequestException && exception.Message.Contains(socket.Message, StringComparison.Ordinal))
        {
            return exception.Message;
        }

        return innermost == exception ? exception.Message : $"{exception.Message} ({innermost.Message})";
    }

    /// <summary>True for failures that mean the server could not be reached or dropped the connection.</summary>
    internal static bool IsTransportFailure(Exception exception) =>
        exception is HttpRequestException { StatusCode: null } or IOException or SocketException;

    /// <summary>Reads an error body and returns the human part: OpenAI <c>{"error":{"message"}}</c>, Ollama <c>{"error":"..."}</c> or the raw text.</summary>
    internal static async Task<string> ReadErrorTextAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        string body;
        try
        {
            body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            return $"(the error body could not be read: {ex.Message})";
        }
        catch (IOException ex)
        {
            return $"(the error body could not be read: {ex.Message})";
        }

        return ErrorText(body, response.ReasonPhrase);
    }

    internal static string ErrorText(string? body, string? reasonPhrase)
    {
        if (string.IsNullOrWhiteSpace(body))
        {
            return reasonPhrase ?? "no details";
        }

        var trimmed = body.Trim();
        if (trimmed.StartsWith('{') && JsonErrorMessage(trimmed) is { Length: > 0 } message)
        {
            return message;
        }

        return trimmed.Length <= 500 ? trimmed : trimmed[..500] + "…";
    }

    /// <summary>The error message in a JSON body, or null when the body is not JSON or has none.</summary>
    private static string? JsonErrorMessage(string json)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            return ErrorMessage(document.RootElement);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The message of an error object (<c>{"error":"x"}</c>, <c>{"error":{"message":"x"}}</c>, <c>{"message":"x"}</c>, <c>{"detail":"x"}</c>), or null.</summary>
    internal static string? ErrorMessage(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        if (root.TryGetProperty("error", out var error))
        {
            if (error.ValueKind == JsonValueKind.String)
            {
                return error.GetString();
            }

            if (error.ValueKind == JsonValueKind.Object && error.TryGetProperty("message", out var nested) && nested.ValueKind == JsonValueKind.String)
            {
                return nested.GetString();
            }
        }

        foreach (var name in (ReadOnlySpan<string>)["message", "detail"])
        {
            if (root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String)
            {
                return value.GetString();
            }
        }

        return null;
    }

    internal static string StatusText(HttpStatusCode status, string? reasonPhrase) =>
        string.IsNullOrEmpty(reasonPhrase) ? $"HTTP {(int)status}" : $"HTTP {(int)status} {reasonPhrase}";

    internal static string TimeoutText(TimeSpan timeout) =>
        timeout == Timeout.InfiniteTimeSpan ? "the configured timeout" : $"{timeout.TotalSeconds:0.#} s";

    /// <summary>
    /// Passes a provider's streamed updates through, turning transport and protocol failures into SutazAI's
    /// exceptions (<paramref name="translate"/>), and refuses a stream that ends without its final update.
    /// </summary>
    internal static async IAsyncEnumerable<T> GuardStreamAsync<T>(
        IAsyncEnumerable<T> source,
        Func<Exception, Exception?> translate,
        Func<T, bool> isFinal,
        Func<Exception> endedEarly,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var finished = false;
        var updates = source.GetAsyncEnumerator(cancellationToken);
        await using (updates.ConfigureAwait(false))
        {
            while (true)
            {
                T update;
                try
                {
                    if (!await updates.MoveNextAsync().ConfigureAwait(false))
                    {
                        break;
                    }

                    update = updates.Current;
                }
                catch (Exception ex) when (translate(ex) is { } translated)
                {
                    throw translated;
                }

                finished |= isFinal(update);
                yield return update;
            }
        }

        // Some clients stop silently when the token is cancelled between lines; report it as a cancellation.
        cancellationToken.ThrowIfCancellationRequested();
        if (!finished)
        {
            throw endedEarly();
        }
    }
}

using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace Sutazai.Server.Cli;

/// <summary>One server-sent event: its name and its JSON data.</summary>
public sealed record ServerEvent(string Name, JsonElement Data);

/// <summary>
/// The terminal client's side of the HTTP API (docs/api.md): JSON calls and event streams, with the server's
/// ProblemDetails turned into one line and the exit code that fits (401/403 → 4, 404 → 3, 400/409/422 → 2).
/// </summary>
public sealed class ServerClient : IDisposable
{
    private readonly HttpClient _http;

    public ServerClient(Uri baseUrl, string? apiKey)
    {
        BaseUrl = baseUrl;
        // No overall timeout: a reply streams for as long as the model writes; Ctrl+C ends it.
        _http = new HttpClient { BaseAddress = baseUrl, Timeout = Timeout.InfiniteTimeSpan };
        if (!string.IsNullOrEmpty(apiKey)) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("sutazai-cli", typeof(ServerClient).Assembly.GetName().Version?.ToString() ?? "1.0"));
    }

    public Uri BaseUrl { get; }

    public Task<JsonElement> GetAsync(string path, CancellationToken ct) => SendAsync(new HttpRequestMessage(HttpMethod.Get, path), ct);

    public Task<JsonElement> PostAsync(string path, object? body, CancellationToken ct) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Post, path) { Content = body is HttpContent content ? content : JsonContent.Create(body, options: CliConsole.Json) }, ct);

    public Task<JsonElement> PatchAsync(string path, object body, CancellationToken ct) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Patch, path) { Content = JsonContent.Create(body, options: CliConsole.Json) }, ct);

    private async Task<JsonElement> SendAsync(HttpRequestMessage request, CancellationToken ct)
    {
        using (request)
        {
            using var response = await SendRawAsync(request, HttpCompletionOption.ResponseContentRead, ct);
            var text = await response.Content.ReadAsStringAsync(ct);
            return text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
        }
    }

    /// <summary>POSTs (or GETs, with a null body) and reads the answer as server-sent events, as they arrive.</summary>
    public async IAsyncEnumerable<ServerEvent> StreamAsync(HttpMethod method, string path, object? body, [EnumeratorCancellation] CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null) request.Content = JsonContent.Create(body, options: CliConsole.Json);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        // Without it, an error before the stream starts (unknown model: 404) cannot be written as ProblemDetails.
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/problem+json", 0.5));
        using var response = await SendRawAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (response.StatusCode == HttpStatusCode.NoContent) yield break;
        await using var stream = await response.Content.ReadAsStreamAsync(ct);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        string? name = null;
        var data = new StringBuilder();
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            // A fast stream's reads finish from the buffer without looking at the token: check it on every line, or
            // Ctrl+C would not stop a reply that never pauses.
            ct.ThrowIfCancellationRequested();
            if (line.Length == 0)
            {
                if (name is not null || data.Length > 0)
                    yield return new ServerEvent(name ?? "message", data.Length == 0 ? default : JsonDocument.Parse(data.ToString()).RootElement.Clone());
                name = null;
                data.Clear();
            }
            else if (line.StartsWith("event:", StringComparison.Ordinal)) name = line[6..].Trim();
            else if (line.StartsWith("data:", StringComparison.Ordinal))
            {
                if (data.Length > 0) data.Append('\n');
                data.Append(line[5..].TrimStart());
            }
        }
    }

    private async Task<HttpResponseMessage> SendRawAsync(HttpRequestMessage request, HttpCompletionOption completion, CancellationToken ct)
    {
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, completion, ct);
        }
        catch (HttpRequestException ex)
        {
            throw new CliException(ExitCodes.Unavailable, $"Cannot reach the SutazAI server at {BaseUrl}: {ex.Message} (start it with sutazai serve, or give --url).");
        }
        if (response.IsSuccessStatusCode) return response;
        using (response)
        {
            var detail = Problem(await response.Content.ReadAsStringAsync(ct)) ?? response.ReasonPhrase ?? "error";
            var code = ExitCodeFor((int)response.StatusCode);
            var hint = response.StatusCode == HttpStatusCode.Unauthorized ? " Sign in with sutazai login, or give --api-key / SUTAZAI_API_KEY." : "";
            throw new CliException(code, $"{(int)response.StatusCode} {detail}{hint}");
        }
    }

    /// <summary>The exit code for an HTTP error status (docs/cli.md).</summary>
    public static int ExitCodeFor(int status) => status switch
    {
        401 or 403 => ExitCodes.Unauthorized,
        404 => ExitCodes.NotFound,
        400 or 409 or 413 or 415 or 422 => ExitCodes.Usage,
        502 or 503 or 504 => ExitCodes.Unavailable,
        _ => ExitCodes.Failed,
    };

    /// <summary>A ProblemDetails' detail (or title) and its field errors, in one line.</summary>
    public static string? Problem(string body)
    {
        try
        {
            var problem = JsonDocument.Parse(body).RootElement;
            if (problem.ValueKind != JsonValueKind.Object) return null;
            var text = problem.TryGetProperty("detail", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString()
                : problem.TryGetProperty("title", out var t) ? t.GetString() : null;
            if (problem.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Object)
                text = string.Join("; ", new[] { text }.Concat(errors.EnumerateObject().Select(e => $"{e.Name}: {string.Join(" ", e.Value.EnumerateArray().Select(v => v.GetString()))}")).Where(s => !string.IsNullOrEmpty(s)));
            if (text is null && problem.TryGetProperty("error", out var error) && error.TryGetProperty("message", out var message)) text = message.GetString();
            return text;
        }
        catch (JsonException)
        {
            return body.Length is > 0 and < 300 ? body : null;
        }
    }

    public void Dispose() => _http.Dispose();
}

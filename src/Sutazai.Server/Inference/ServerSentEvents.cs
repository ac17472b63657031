using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;

namespace Sutazai.Server.Inference;

/// <summary>Writes <c>text/event-stream</c> events, flushing each so the client sees tokens as they are made.</summary>
public sealed class ServerSentEvents(HttpResponse response)
{
    private readonly JsonSerializerOptions _json = response.HttpContext.RequestServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions;

    public static bool Wanted(HttpRequest request) =>
        request.Headers.Accept.Any(a => a?.Contains("text/event-stream", StringComparison.OrdinalIgnoreCase) == true);

    public void Start()
    {
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        response.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseBodyFeature>()?.DisableBuffering();
    }

    public async Task WriteAsync<T>(string eventName, T data, CancellationToken ct)
    {
        var payload = $"event: {eventName}\ndata: {JsonSerializer.Serialize(data, _json)}\n\n";
        await response.Body.WriteAsync(Encoding.UTF8.GetBytes(payload), ct);
        await response.Body.FlushAsync(ct);
    }
}

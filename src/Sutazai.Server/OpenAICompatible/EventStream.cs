using System.Text;
using System.Text.Json;

namespace Sutazai.Server.OpenAICompatible;

/// <summary>OpenAI's streaming format: <c>data: {json}</c> events, flushed one by one, ending with <c>data: [DONE]</c>.</summary>
public sealed class OpenAIEventStream
{
    private static readonly byte[] Done = Encoding.UTF8.GetBytes("data: [DONE]\n\n");
    private readonly HttpResponse _response;
    private bool _started;

    public OpenAIEventStream(HttpResponse response) => _response = response;

    public async Task WriteAsync<T>(T data, CancellationToken ct)
    {
        Start();
        var payload = Encoding.UTF8.GetBytes($"data: {JsonSerializer.Serialize(data, OpenAIJson.Options)}\n\n");
        await _response.Body.WriteAsync(payload, ct);
        await _response.Body.FlushAsync(ct);
    }

    public async Task DoneAsync(CancellationToken ct)
    {
        Start();
        await _response.Body.WriteAsync(Done, ct);
        await _response.Body.FlushAsync(ct);
    }

    private void Start()
    {
        if (_started) return;
        _started = true;
        _response.StatusCode = StatusCodes.Status200OK;
        _response.ContentType = "text/event-stream; charset=utf-8";
        _response.Headers.CacheControl = "no-cache";
        _response.Headers["X-Accel-Buffering"] = "no";
        _response.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseBodyFeature>()?.DisableBuffering();
    }
}

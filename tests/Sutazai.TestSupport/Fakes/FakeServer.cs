using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Sutazai.Inference.Tests.Fakes;

/// <summary>One request as the fake server received it.</summary>
public sealed record RecordedRequest(string Method, string Path, string? Authorization, string Body)
{
    public JsonObject Json => JsonNode.Parse(Body)?.AsObject() ?? throw new InvalidOperationException("The request had no JSON body.");
}

/// <summary>
/// An in-process Kestrel server on 127.0.0.1 with a free port that records every request (method, path,
/// Authorization header, body) and can hold a stream after its first chunk to test incremental delivery and aborts.
/// </summary>
public abstract class FakeServer : IAsyncDisposable
{
    private WebApplication? _app;
    private int _chunksSent;

    /// <summary>The server root, e.g. <c>http://127.0.0.1:41234/</c>.</summary>
    public Uri Root { get; private set; } = null!;

    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

    /// <summary>When set, a streaming reply waits for this after its first chunk (or until the client goes away).</summary>
    public TaskCompletionSource? HoldAfterFirstChunk { get; set; }

    /// <summary>Which chunk <see cref="HoldAfterFirstChunk"/> holds after (1: the first; 2 for a chat stream's first
    /// text, which follows the role chunk).</summary>
    public int HoldAfterChunk { get; set; } = 1;

    /// <summary>Completes when a held stream sees the client abort the connection.</summary>
    public TaskCompletionSource StreamAborted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>How long chat / completion requests wait before answering anything (no headers yet).</summary>
    public TimeSpan DelayBeforeReply { get; set; }

    /// <summary>Chunks written by streaming replies so far.</summary>
    public int ChunksSent => Volatile.Read(ref _chunksSent);

    public RecordedRequest Single(string method, string path) =>
        Assert.Single(Requests, r => r.Method == method && r.Path == path);

    protected async Task StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        app.Use(async (context, next) =>
        {
            using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
            var body = await reader.ReadToEndAsync(context.RequestAborted);
            context.Request.Body = new MemoryStream(Encoding.UTF8.GetBytes(body));
            Requests.Enqueue(new RecordedRequest(context.Request.Method, context.Request.Path.Value ?? "", context.Request.Headers.Authorization.ToString() is { Length: > 0 } auth ? auth : null, body));
            await next(context);
        });
        Map(app);
        await app.StartAsync();
        _app = app;
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        Root = new Uri(address.TrimEnd('/') + "/");
    }

    protected abstract void Map(WebApplication app);

    /// <summary>Writes one streamed chunk and flushes it; after the first chunk, honours <see cref="HoldAfterFirstChunk"/>.</summary>
    /// <returns>False when the client went away while the stream was held.</returns>
    protected async Task<bool> WriteChunkAsync(HttpContext context, string text)
    {
        await context.Response.WriteAsync(text, context.RequestAborted);
        await context.Response.Body.FlushAsync(context.RequestAborted);
        if (Interlocked.Increment(ref _chunksSent) == HoldAfterChunk && HoldAfterFirstChunk is { } hold)
        {
            var aborted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            await using var registration = context.RequestAborted.Register(() => aborted.TrySetResult());
            if (await Task.WhenAny(hold.Task, aborted.Task) == aborted.Task)
            {
                StreamAborted.TrySetResult();
                return false;
            }
        }

        return true;
    }

    /// <summary>Waits <see cref="DelayBeforeReply"/>; false when the client gave up meanwhile.</summary>
    protected async Task<bool> DelayReplyAsync(HttpContext context)
    {
        if (DelayBeforeReply > TimeSpan.Zero)
        {
            await Task.WhenAny(Task.Delay(DelayBeforeReply, context.RequestAborted));
        }

        return !context.RequestAborted.IsCancellationRequested;
    }

    protected static async Task<JsonObject> BodyAsync(HttpContext context)
    {
        using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
        var text = await reader.ReadToEndAsync(context.RequestAborted);
        return JsonNode.Parse(text)?.AsObject() ?? new JsonObject();
    }

    protected static Task JsonAsync(HttpContext context, int status, JsonNode body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json; charset=utf-8";
        return context.Response.WriteAsync(body.ToJsonString(), context.RequestAborted);
    }

    public async ValueTask DisposeAsync()
    {
        HoldAfterFirstChunk?.TrySetResult();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        GC.SuppressFinalize(this);
    }

    /// <summary>A loopback URL on which nothing listens.</summary>
    public static Uri ClosedPortRoot()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return new Uri($"http://127.0.0.1:{port}/");
    }
}

using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Sutazai.Inference.Tests.Pull;

/// <summary>One request as the server saw it.</summary>
public sealed record RecordedRequest(string Path, string? Range);

/// <summary>
/// A tiny HTTP/1.1 server on 127.0.0.1 written straight on a socket, so a test decides byte for byte what goes out:
/// where the connection drops, which Content-Range is claimed, whether Range is honoured. Every response closes the
/// connection, so each request is a fresh one.
/// </summary>
public sealed class TestFileServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, ServedFile> _files = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<RecordedRequest> _requests = new();
    private readonly ConcurrentQueue<Exception> _connectionErrors = new();
    private readonly ConcurrentBag<Task> _connections = [];
    private readonly Task _acceptLoop;

    public TestFileServer()
    {
        _listener.Start();
        BaseUri = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");
        _acceptLoop = AcceptLoopAsync();
    }

    public Uri BaseUri { get; }

    public IReadOnlyList<RecordedRequest> Requests => [.. _requests];

    /// <summary>Errors writing to clients that went away (expected after a client cancels).</summary>
    public IReadOnlyList<Exception> ConnectionErrors => [.. _connectionErrors];

    public ServedFile Serve(string path, byte[] content)
    {
        var file = new ServedFile(content);
        _files[path] = file;
        return file;
    }

    public Uri UrlFor(string path) => new(BaseUri, path);

    public async ValueTask DisposeAsync()
    {
        foreach (var file in _files.Values)
        {
            file.ReleasePause();
        }

        await _stop.CancelAsync();
        _listener.Stop();
        await _acceptLoop;
        await Task.WhenAll(_connections).WaitAsync(TimeSpan.FromSeconds(10));
        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            _connections.Add(HandleAsync(client));
        }
    }

    private async Task HandleAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                var head = await ReadHeadAsync(stream);
                var lines = head.Split("\r\n");
                var path = lines[0].Split(' ')[1];
                string? range = null;
                foreach (var line in lines.Skip(1))
                {
                    var colon = line.IndexOf(':', StringComparison.Ordinal);
                    if (colon > 0 && line[..colon].Equals("Range", StringComparison.OrdinalIgnoreCase))
                    {
                        range = line[(colon + 1)..].Trim();
                    }
                }

                _requests.Enqueue(new RecordedRequest(path, range));
                if (_files.TryGetValue(path, out var file))
                {
                    await file.RespondAsync(stream, range, _stop.Token);
                }
                else
                {
                    await WriteHeadAsync(stream, 404, "Not Found", [("Content-Length", "0")]);
                }

                client.Client.Shutdown(SocketShutdown.Send);
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
            {
                _connectionErrors.Enqueue(e);
            }
        }
    }

    private static async Task<string> ReadHeadAsync(NetworkStream stream)
    {
        var received = new List<byte>();
        var buffer = new byte[1024];
        while (true)
        {
            var read = await stream.ReadAsync(buffer);
            if (read == 0)
            {
                throw new IOException("client closed before sending a full request head");
            }

            received.AddRange(buffer.AsSpan(0, read));
            var text = Encoding.ASCII.GetString([.. received]);
            var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (end >= 0)
            {
                return text[..end];
            }
        }
    }

    internal static async Task WriteHeadAsync(Stream stream, int status, string reason, IEnumerable<(string Name, string Value)> headers)
    {
        var builder = new StringBuilder().Append(CultureInfo.InvariantCulture, $"HTTP/1.1 {status} {reason}\r\n");
        foreach (var (name, value) in headers)
        {
            builder.Append(CultureInfo.InvariantCulture, $"{name}: {value}\r\n");
        }

        builder.Append("Connection: close\r\n\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(builder.ToString()));
        await stream.FlushAsync();
    }
}

/// <summary>A file and the ways the server should misbehave when serving it.</summary>
public sealed class ServedFile(byte[] content)
{
    private readonly TaskCompletionSource _paused = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _resume = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _served;

    public byte[] Content { get; set; } = content;

    /// <summary>Close the connection once this absolute offset has been sent, in the first <see cref="DropRequests"/> requests.</summary>
    public long? DropAtOffset { get; set; }

    public int DropRequests { get; set; } = 1;

    /// <summary>In the first request, stop after this absolute offset until <see cref="ReleasePause"/>.</summary>
    public long? PauseAtOffset { get; set; }

    /// <summary>Answer every request with this status and an empty body.</summary>
    public int? Status { get; set; }

    /// <summary>Answer 200 with the whole file even to a Range request.</summary>
    public bool IgnoreRange { get; set; }

    /// <summary>Claim this start in Content-Range while sending the bytes that were asked for.</summary>
    public long? ContentRangeStart { get; set; }

    /// <summary>Send no Content-Length: the body ends when the connection closes.</summary>
    public bool OmitContentLength { get; set; }

    public string? LinkedEtag { get; set; }

    public long? LinkedSize { get; set; }

    /// <summary>Answer 302 to this location (with the X-Linked headers, as Hugging Face does).</summary>
    public string? RedirectTo { get; set; }

    /// <summary>Completes once the first request reached <see cref="PauseAtOffset"/>.</summary>
    public Task Paused => _paused.Task;

    public void ReleasePause() => _resume.TrySetResult();

    internal async Task RespondAsync(Stream stream, string? range, CancellationToken stop)
    {
        var request = Interlocked.Increment(ref _served) - 1;
        var linked = new List<(string, string)>();
        if (LinkedEtag is not null)
        {
            linked.Add(("X-Linked-Etag", $"\"{LinkedEtag}\""));
        }

        if (LinkedSize is long linkedSize)
        {
            linked.Add(("X-Linked-Size", linkedSize.ToString(CultureInfo.InvariantCulture)));
        }

        if (Status is int status)
        {
            await TestFileServer.WriteHeadAsync(stream, status, "Status", [("Content-Length", "0")]);
            return;
        }

        if (RedirectTo is not null)
        {
            await TestFileServer.WriteHeadAsync(stream, 302, "Found", [.. linked, ("Location", RedirectTo), ("Content-Length", "0")]);
            return;
        }

        var length = Content.LongLength;
        long? start = range is not null && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-')
            ? long.Parse(range["bytes=".Length..^1], CultureInfo.InvariantCulture)
            : null;
        if (start is long rangeStart && !IgnoreRange && rangeStart >= length)
        {
            await TestFileServer.WriteHeadAsync(stream, 416, "Range Not Satisfiable", [("Content-Range", $"bytes */{length}"), ("Content-Length", "0")]);
            return;
        }

        var partial = start is not null && !IgnoreRange;
        var from = partial ? start!.Value : 0;
        var headers = new List<(string, string)>(linked) { ("Content-Type", "application/octet-stream") };
        if (!OmitContentLength)
        {
            headers.Add(("Content-Length", (length - from).ToString(CultureInfo.InvariantCulture)));
        }

        if (partial)
        {
            headers.Add(("Content-Range", $"bytes {ContentRangeStart ?? from}-{length - 1}/{length}"));
        }

        await TestFileServer.WriteHeadAsync(stream, partial ? 206 : 200, partial ? "Partial Content" : "OK", headers);

        var end = length;
        if (DropAtOffset is long drop && request < DropRequests)
        {
            end = Math.Max(from, Math.Min(drop, length));
        }

        var pause = request == 0 && PauseAtOffset is long pauseAt && pauseAt > from && pauseAt < end ? pauseAt : (long?)null;
        if (pause is long pauseOffset)
        {
            await stream.WriteAsync(Content.AsMemory((int)from, (int)(pauseOffset - from)), stop);
            await stream.FlushAsync(stop);
            _paused.TrySetResult();
            await _resume.Task.WaitAsync(stop);
            from = pauseOffset;
        }

        await stream.WriteAsync(Content.AsMemory((int)from, (int)(end - from)), stop);
        await stream.FlushAsync(stop);
    }
}

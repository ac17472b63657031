using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sutazai.TestSupport.Fuzz;

/// <summary>
/// A seeded fuzzer for a running SutazAI server: reads its OpenAPI document and sends every operation generated and
/// broken requests (bodies, query strings, path values, content types, headers, credentials), then opens the
/// WebSockets and sends hostile frames. It records what a client mistake must never cause (<see cref="FuzzFinding"/>).
/// It signs up its own user and admin (the admin promoted by <c>rootAdminToken</c>, which it never uses itself), and
/// signs up again when a case logs them out, deactivates or demotes them.
/// </summary>
public sealed class ApiFuzzer(Uri baseAddress, string rootAdminToken, FuzzOptions options)
{
    private const string Password = "Fuzz#Kettle9!Violet";
    private static readonly string[] Accepts = ["application/json", "*/*", "text/event-stream", "application/xml", "text/html", "garbage/", "application/json;q=0"];

    private readonly HttpClient _http = new(new SocketsHttpHandler { AllowAutoRedirect = false, PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
    {
        BaseAddress = baseAddress,
        Timeout = Timeout.InfiniteTimeSpan,
    };

    private readonly SemaphoreSlim _signIn = new(1, 1);
    private readonly string?[] _tokens = new string?[2];
    private FuzzReport _report = null!;

    public async Task<FuzzReport> RunAsync(CancellationToken cancel = default)
    {
        var openApi = await _http.GetFromJsonAsync<JsonElement>("/openapi/v1.json", cancel);
        var operations = FuzzOperation.Read(openApi);
        var values = new FuzzValues(openApi, options);
        _report = new FuzzReport { Seed = options.Seed };
        foreach (var op in operations) _report.Operations[op.Key] = 0;
        var clock = Stopwatch.StartNew();
        var deadline = DateTime.UtcNow + options.Budget;

        // Spread cases over operations round-robin in a seeded order, so a short run still reaches every route.
        var order = operations.ToArray();
        new Random(options.Seed).Shuffle(order);
        var next = -1;
        async Task HttpWorker()
        {
            while (DateTime.UtcNow < deadline && !cancel.IsCancellationRequested)
            {
                var i = Interlocked.Increment(ref next);
                if (i >= options.Cases) return;
                await HttpCaseAsync(i, order[i % order.Length], values, new Random(unchecked(options.Seed * 1_000_003 + i)), cancel);
            }
        }

        var sockets = options.Sockets.Select((spec, s) => SocketWorker(spec, values, s, deadline, cancel));
        await Task.WhenAll(Enumerable.Range(0, options.Concurrency).Select(_ => HttpWorker()).Concat(sockets));
        _report.Elapsed = clock.Elapsed;
        return _report;
    }

    /// <summary>A valid access token for the fuzz user (0) or admin (1); signs up a new one when the old one stopped working.</summary>
    private async Task<string> TokenAsync(int who, string? stale, CancellationToken cancel)
    {
        var current = Volatile.Read(ref _tokens[who]);
        if (current is not null && current != stale) return current;
        await _signIn.WaitAsync(cancel);
        try
        {
            if (_tokens[who] is { } fresh && fresh != stale) return fresh;
            if (_tokens[who] is not null) _report.TokenRenewals++;
            var username = "fz" + Guid.NewGuid().ToString("N")[..14];
            var register = await _http.PostAsJsonAsync("/api/v1/auth/register", new { email = username + "@example.test", username, password = Password }, cancel);
            if (register.StatusCode != HttpStatusCode.Created) throw new InvalidOperationException($"The fuzzer could not sign up: {(int)register.StatusCode} {await register.Content.ReadAsStringAsync(cancel)}");
            var id = (await register.Content.ReadFromJsonAsync<JsonElement>(cancel)).GetProperty("id").GetString();
            if (who == 1)
            {
                using var promote = new HttpRequestMessage(HttpMethod.Patch, $"/api/v1/admin/users/{id}") { Content = JsonContent.Create(new { role = "admin", isActive = true }) };
                promote.Headers.Authorization = new("Bearer", rootAdminToken);
                var promoted = await _http.SendAsync(promote, cancel);
                if (!promoted.IsSuccessStatusCode) throw new InvalidOperationException($"The fuzzer could not promote its admin: {(int)promoted.StatusCode}");
            }
            var login = await _http.PostAsJsonAsync("/api/v1/auth/login", new { login = username, password = Password }, cancel);
            if (!login.IsSuccessStatusCode) throw new InvalidOperationException($"The fuzzer could not sign in: {(int)login.StatusCode}");
            return _tokens[who] = (await login.Content.ReadFromJsonAsync<JsonElement>(cancel)).GetProperty("accessToken").GetString()!;
        }
        finally
        {
            _signIn.Release();
        }
    }

    private async Task HttpCaseAsync(int index, FuzzOperation op, FuzzValues values, Random rng, CancellationToken cancel)
    {
        var write = op.Method != "GET";
        var path = op.Path;
        foreach (var (name, _, schema) in op.Parameters.Where(p => p.In == "path"))
        {
            var value = values.PathValue(rng, name, schema, write);
            path = path.Replace("{" + name + "}", rng.Next(20) == 0 ? value : Uri.EscapeDataString(value), StringComparison.Ordinal);
        }
        var query = new List<string>();
        foreach (var (name, _, schema) in op.Parameters.Where(p => p.In == "query"))
            if (rng.Next(100) < 75) query.Add(Uri.EscapeDataString(name) + "=" + Uri.EscapeDataString(values.QueryValue(rng, name, schema)));
        if (rng.Next(10) == 0) query.Add(Uri.EscapeDataString(FuzzValues.Hostile[rng.Next(FuzzValues.Hostile.Length)]) + "=" + Uri.EscapeDataString(FuzzValues.Word(rng)));
        if (rng.Next(20) == 0 && query.Count > 0) query.Add(query[0]);
        var target = path + (query.Count > 0 ? "?" + string.Join('&', query) : "");

        HttpRequestMessage request;
        try
        {
            request = new HttpRequestMessage(new HttpMethod(op.Method), new Uri(target, UriKind.Relative));
        }
        catch (UriFormatException)
        {
            _report.Skipped(op.Key);
            return;
        }
        var mutation = "-";
        var contentType = "-";
        var bodyBytes = 0;
        if (op.Body is not null || write)
        {
            var node = op.Body is { } s ? values.Generate(rng, s, "body", 0) : values.Any(rng, 0);
            (var bytes, mutation) = values.Body(rng, node);
            bodyBytes = bytes.Length;
            contentType = rng.Next(100) < 82 ? "application/json" : values.ContentTypes[rng.Next(values.ContentTypes.Length)];
            if (op.Body is null && rng.Next(3) == 0)
            {
                contentType = "multipart/form-data";
                var form = new MultipartFormDataContent();
                form.Add(new ByteArrayContent(bytes), new[] { "file", "files", "collectionId", "x" }[rng.Next(4)], new[] { "a.txt", "b.md", "c.pdf", "../../x", "e.bin", " " }[rng.Next(5)]);
                request.Content = form;
            }
            else if (op.FormBody && rng.Next(5) == 0)
            {
                contentType = "application/x-www-form-urlencoded";
                request.Content = new FormUrlEncodedContent([new("login", FuzzValues.Word(rng)), new("password", FuzzValues.Word(rng))]);
            }
            else if (op.Body is not null || rng.Next(2) == 0)
            {
                request.Content = new ByteArrayContent(bytes);
                if (contentType.Length > 0) request.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
            }
        }
        var who = op.Path.Contains("/admin/", StringComparison.Ordinal) || rng.Next(4) == 0 ? 1 : 0;
        var auth = rng.Next(100);
        string? token = null;
        if (auth < 86) request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + (token = await TokenAsync(who, null, cancel)));
        else if (auth < 90) request.Headers.TryAddWithoutValidation("Authorization", new[] { "Bearer", "Bearer x.y.z", "Basic YTpi", "Bearer sk-" + new string('a', 40), "Bearer " + new string('e', 9000), "bearer  " }[rng.Next(6)]);
        if (rng.Next(8) == 0) request.Headers.TryAddWithoutValidation("Accept", Accepts[rng.Next(Accepts.Length)]);
        if (rng.Next(15) == 0) request.Headers.TryAddWithoutValidation("X-Request-Id", new[] { "", new string('r', 5000), "a\tb", "../x" }[rng.Next(4)]);
        if (rng.Next(25) == 0) request.Headers.TryAddWithoutValidation("Cookie", "sutazai.auth=" + new string('c', rng.Next(10, 3000)));
        var described = $"case #{index}: {op.Method} {Shorten(target)} [{contentType}, body {mutation} ({bodyBytes} bytes), auth {(token is null ? "none/garbage" : who == 1 ? "admin" : "user")}]";
        // Over the server's request-line or body limit the server answers 414/413 and may close the connection before
        // the client has sent everything (HTTP allows it); the client then sees the close, not always the answer. So
        // does a target Kestrel refuses outright: a NUL byte (%00) in the path gets its own 400 with Connection: close
        // before the body is read, and a large body still being sent then meets the closed connection.
        var oversized = target.Length > options.MaxRequestLineBytes || bodyBytes > options.MaxBodyBytes
            || (target.Contains("%00", StringComparison.Ordinal) && bodyBytes > 64 * 1024);

        using (request)
        {
            var clock = Stopwatch.StartNew();
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            timeout.CancelAfter(options.Slow);
            HttpResponseMessage response;
            try
            {
                response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            }
            catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
            {
                _report.Add(new FuzzFinding("hang", op.Key, null, clock.Elapsed.TotalMilliseconds, described, "no response headers"));
                _report.Http(op.Key, 0, clock.Elapsed.TotalMilliseconds);
                return;
            }
            catch (HttpRequestException e)
            {
                if (!oversized) _report.Add(new FuzzFinding("dropped", op.Key, null, clock.Elapsed.TotalMilliseconds, described, e.Message));
                _report.Http(op.Key, 0, clock.Elapsed.TotalMilliseconds);
                return;
            }
            using (response)
            {
                var status = (int)response.StatusCode;
                var streaming = response.Content.Headers.ContentType?.MediaType == "text/event-stream";
                string body;
                if (streaming)
                {
                    // A stream may stay open as long as the thing it follows; its headers came in time, so sample it.
                    using var sample = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                    sample.CancelAfter(TimeSpan.FromSeconds(1));
                    body = await ReadSomeAsync(response, sample.Token);
                }
                else
                {
                    try
                    {
                        body = await response.Content.ReadAsStringAsync(timeout.Token);
                    }
                    catch (Exception e) when (e is OperationCanceledException or HttpRequestException or IOException && !cancel.IsCancellationRequested)
                    {
                        if (e is OperationCanceledException || !oversized)
                            _report.Add(new FuzzFinding(e is OperationCanceledException ? "hang" : "dropped", op.Key, status, clock.Elapsed.TotalMilliseconds, described, "body: " + e.Message));
                        _report.Http(op.Key, status, clock.Elapsed.TotalMilliseconds);
                        return;
                    }
                }
                var ms = clock.Elapsed.TotalMilliseconds;
                _report.Http(op.Key, status, ms);
                if (status >= 500) _report.Add(new FuzzFinding("server-error", op.Key, status, ms, described, Shorten(body)));
                if (status == 401 && token is not null && !op.Path.StartsWith("/api/v1/auth/", StringComparison.Ordinal)) await TokenAsync(who, token, cancel);
                if (status is >= 200 and < 300 && !streaming && body.Length is > 0 and < 512_000 && response.Content.Headers.ContentType?.MediaType?.Contains("json", StringComparison.Ordinal) == true)
                {
                    try
                    {
                        using var json = JsonDocument.Parse(body);
                        values.Learn(json.RootElement);
                    }
                    catch (JsonException e)
                    {
                        _report.Add(new FuzzFinding("bad-json-response", op.Key, status, ms, described, e.Message));
                    }
                }
            }
        }
    }

    private static async Task<string> ReadSomeAsync(HttpResponseMessage response, CancellationToken cancel)
    {
        var buffer = new byte[8192];
        var text = new StringBuilder();
        try
        {
            await using var stream = await response.Content.ReadAsStreamAsync(cancel);
            int read;
            while (text.Length < 4096 && (read = await stream.ReadAsync(buffer, cancel)) > 0) text.Append(Encoding.UTF8.GetString(buffer, 0, read));
        }
        catch (OperationCanceledException)
        {
            // The sample window ended; the stream is still open, which is what a live stream does.
        }
        return text.ToString();
    }

    private static string Shorten(string text) => text.Length <= 300 ? text : text[..300] + $"…({text.Length} chars)";

    private async Task SocketWorker(SocketSpec spec, FuzzValues values, int index, DateTime deadline, CancellationToken cancel)
    {
        for (var session = 0; session < options.SocketSessions && DateTime.UtcNow < deadline && !cancel.IsCancellationRequested; session++)
            await SocketSessionAsync(spec, values, new Random(unchecked(options.Seed * 7_919 + (index + 1) * 1_000_033 + session)), cancel);
    }

    /// <summary>One socket: connect (with a token, or none and an <c>auth</c> frame), send hostile frames, then a ping that
    /// must be answered with a pong or a close carrying a code. A drop without a close code or a 1011 is a finding.</summary>
    private async Task SocketSessionAsync(SocketSpec spec, FuzzValues values, Random rng, CancellationToken cancel)
    {
        var who = rng.Next(3) == 0 ? 1 : 0;
        var token = await TokenAsync(who, null, cancel);
        var byQuery = rng.Next(5) != 0;
        var ws = new ClientWebSocket();
        ws.Options.KeepAliveInterval = TimeSpan.Zero;
        var uri = new UriBuilder(baseAddress) { Scheme = baseAddress.Scheme == "https" ? "wss" : "ws", Path = spec.Path, Query = byQuery ? "access_token=" + Uri.EscapeDataString(token) : "" }.Uri;
        var sent = new List<string>();
        using var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        connectTimeout.CancelAfter(options.Slow);
        try
        {
            await ws.ConnectAsync(uri, connectTimeout.Token);
        }
        catch (WebSocketException e)
        {
            _report.Add(new FuzzFinding("socket-refused", spec.Path, null, 0, "connect", e.Message));
            ws.Dispose();
            return;
        }

        var pong = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        string? ending = null;
        var reader = Task.Run(async () =>
        {
            var buffer = new byte[64 * 1024];
            try
            {
                while (true)
                {
                    var message = new MemoryStream();
                    WebSocketReceiveResult result;
                    do
                    {
                        result = await ws.ReceiveAsync(buffer, cancel);
                        message.Write(buffer, 0, result.Count);
                    }
                    while (!result.EndOfMessage);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        ending = ws.CloseStatus is { } code ? ((int)code).ToString(System.Globalization.CultureInfo.InvariantCulture) : "close-without-code";
                        return;
                    }
                    var text = Encoding.UTF8.GetString(message.ToArray());
                    if (text.Contains("\"pong\"", StringComparison.Ordinal)) pong.TrySetResult();
                    if (result.MessageType == WebSocketMessageType.Text)
                    {
                        try
                        {
                            using var json = JsonDocument.Parse(text);
                            values.Learn(json.RootElement);
                        }
                        catch (JsonException e)
                        {
                            _report.Add(new FuzzFinding("bad-json-frame", spec.Path, null, 0, string.Join(" | ", sent.TakeLast(3)), e.Message + ": " + Shorten(text)));
                        }
                    }
                }
            }
            catch (WebSocketException e)
            {
                ending = "dropped: " + e.WebSocketErrorCode;
            }
            catch (OperationCanceledException)
            {
                ending = "cancelled";
            }
        }, CancellationToken.None);

        var frames = 0;
        if (!byQuery) await SendAsync(ws, Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { type = "auth", token })), WebSocketMessageType.Text, sent, "auth");
        for (var f = 0; f < options.FramesPerSession && ws.State == WebSocketState.Open && !reader.IsCompleted; f++, frames++)
        {
            var (bytes, type, kind) = Frame(spec, values, rng);
            await SendAsync(ws, bytes, type, sent, kind);
        }
        var clock = Stopwatch.StartNew();
        if (ws.State == WebSocketState.Open && !reader.IsCompleted)
        {
            await SendAsync(ws, """{"type":"ping"}"""u8.ToArray(), WebSocketMessageType.Text, sent, "ping");
            var answered = await Task.WhenAny(pong.Task, reader, Task.Delay(options.Slow, cancel));
            if (answered != pong.Task && answered != reader && !cancel.IsCancellationRequested)
                _report.Add(new FuzzFinding("socket-hang", spec.Path, null, clock.Elapsed.TotalMilliseconds, string.Join(" | ", sent.TakeLast(4)), "no pong and no close"));
        }
        if (!reader.IsCompleted && ws.State == WebSocketState.Open)
        {
            using var closing = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            closing.CancelAfter(options.Slow);
            try
            {
                await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "done", closing.Token);
            }
            catch (WebSocketException)
            {
                // The server closed first; the reader records how.
            }
        }
        if (await Task.WhenAny(reader, Task.Delay(options.Slow, CancellationToken.None)) != reader)
        {
            _report.Add(new FuzzFinding("socket-hang", spec.Path, null, options.Slow.TotalMilliseconds, string.Join(" | ", sent.TakeLast(4)), "the close was never answered"));
            ws.Abort();
        }
        await reader;
        ending ??= "open";
        _report.Socket(frames, ending);
        if (ending.StartsWith("dropped", StringComparison.Ordinal) || ending is "close-without-code" or "1011")
            _report.Add(new FuzzFinding("socket-" + (ending == "1011" ? "server-error" : "dropped"), spec.Path, null, clock.Elapsed.TotalMilliseconds, string.Join(" | ", sent.TakeLast(4)), ending));
        ws.Dispose();
    }

    private static async Task SendAsync(ClientWebSocket ws, byte[] bytes, WebSocketMessageType type, List<string> sent, string kind)
    {
        sent.Add(kind);
        try
        {
            // Large frames go out in pieces, as a browser fragments them.
            for (var offset = 0; offset < bytes.Length || offset == 0; offset += 16 * 1024)
            {
                var count = Math.Min(16 * 1024, bytes.Length - offset);
                await ws.SendAsync(bytes.AsMemory(offset, count), type, offset + count >= bytes.Length, CancellationToken.None);
                if (bytes.Length == 0) break;
            }
        }
        catch (WebSocketException)
        {
            // The server closed while we were sending; the reader records the close (or its absence).
        }
    }

    private static (byte[] Bytes, WebSocketMessageType Type, string Kind) Frame(SocketSpec spec, FuzzValues values, Random rng)
    {
        var roll = rng.Next(100);
        if (roll < 6) return (RandomBytes(rng, rng.Next(1, 300)), WebSocketMessageType.Binary, "binary");
        if (roll < 9) return (Encoding.UTF8.GetBytes("{\"type\":\"chat\",\"message\":\"" + new string('z', 70_000) + "\"}"), WebSocketMessageType.Text, "oversized");
        if (roll < 12) return ([], WebSocketMessageType.Text, "empty");
        var type = roll < 20 ? new[] { "", "CHAT", "unknown", "__proto__", "constructor", FuzzValues.Hostile[rng.Next(FuzzValues.Hostile.Length)] }[rng.Next(6)] : spec.Frames.Keys.ElementAt(rng.Next(spec.Frames.Count));
        using var schema = JsonDocument.Parse(spec.Frames.GetValueOrDefault(type) ?? """{"type":"object"}""");
        var node = values.Generate(rng, schema.RootElement, type, 0) as JsonObject ?? [];
        if (type == "chat" || type == "message")
            node[type == "chat" ? "message" : "text"] ??= "hello";
        // Keep replies short, so the frames that follow are read rather than queued behind a long generation.
        if (type == "chat") node["options"] = new JsonObject { ["maxTokens"] = rng.Next(1, 8) };
        if (rng.Next(10) != 0) node["type"] = type;
        var (bytes, mutation) = values.Body(rng, node);
        return (bytes, WebSocketMessageType.Text, type + ":" + mutation);
    }

    private static byte[] RandomBytes(Random rng, int length)
    {
        var bytes = new byte[length];
        rng.NextBytes(bytes);
        return bytes;
    }
}

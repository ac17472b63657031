using System.Buffers;
using System.Net.WebSockets;
using System.Security.Claims;
using System.Text;
using System.Text.Json;
using Sutazai.Server.Identity;

namespace Sutazai.Server.Chat;

/// <summary>
/// What every SutazAI WebSocket shares (/ws/chat, /ws/jarvis): JSON text frames, authentication by header, query or a
/// first <c>auth</c> frame within 10 seconds, <c>ping</c>/<c>pong</c>, frame size limit (1009), errors in-band.
/// Every socket needs the <c>chat</c> scope (an API key without it is refused). Subclasses handle the authenticated
/// frame types.
/// </summary>
public abstract class JsonSocketSession(WebSocket socket, IServiceScopeFactory scopes, ILogger logger, ClaimsPrincipal? principal) : IDisposable
{
    public const int MaxFrameBytes = 64 * 1024;
    protected static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private static readonly TimeSpan AuthTimeout = TimeSpan.FromSeconds(10);
    private readonly SemaphoreSlim _send = new(1, 1);
    private readonly CancellationTokenSource _closing = new();
    private ClaimsPrincipal? _user = principal;

    protected IServiceScopeFactory Scopes => scopes;

    protected ClaimsPrincipal User => _user ?? throw new InvalidOperationException("Not authenticated.");

    /// <summary>Cancelled when the socket closes; background work that writes to the socket uses it.</summary>
    protected CancellationToken Closing => _closing.Token;

    public string SessionId { get; } = Guid.NewGuid().ToString("N");

    public Guid? UserId => _user?.UserId();

    /// <summary>The frame types this socket understands after authentication, for the unknown-type error.</summary>
    protected abstract string KnownTypes { get; }

    protected abstract Task HandleAsync(string type, JsonElement frame, CancellationToken ct);

    /// <summary>Runs when a socket authenticates (by header, query or auth frame).</summary>
    protected virtual Task OnAuthenticatedAsync(CancellationToken ct) => Task.CompletedTask;

    public const string RequiredScope = ApiScopes.Chat;

    private static readonly string MissingScope = $"This API key lacks the '{RequiredScope}' scope the sockets need.";

    /// <summary>
    /// Accepts the upgrade (400 ProblemDetails for a plain HTTP request, 403 insufficient_scope for a credential
    /// without the chat scope) and runs the session until it ends.
    /// </summary>
    public static async Task ServeAsync<TSession>(HttpContext http, string path, Func<WebSocket, ClaimsPrincipal?, TSession> create, Action<TSession> opened, Action<TSession> closed)
        where TSession : JsonSocketSession
    {
        if (!http.WebSockets.IsWebSocketRequest)
        {
            http.Response.StatusCode = StatusCodes.Status400BadRequest;
            await http.Response.WriteAsJsonAsync(new { title = "Bad Request", status = 400, detail = $"This endpoint speaks WebSocket only (see docs/api.md, {path})." });
            return;
        }
        if (http.User.Identity?.IsAuthenticated == true && !http.User.HasScope(RequiredScope))
        {
            await InsufficientScope.WriteAsync(http, MissingScope, RequiredScope);
            return;
        }
        var socket = await http.WebSockets.AcceptWebSocketAsync();
        var session = create(socket, http.User.Identity?.IsAuthenticated == true ? http.User : null);
        opened(session);
        try
        {
            await session.RunAsync(http.RequestAborted);
        }
        finally
        {
            closed(session);
            session.Dispose();
        }
    }

    public async Task RunAsync(CancellationToken aborted)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(aborted, _closing.Token);
        var ct = linked.Token;
        await SendAsync(new { type = "connection", sessionId = SessionId, authenticated = _user is not null }, ct);
        if (_user is not null) await OnAuthenticatedAsync(ct);
        var authDeadline = DateTime.UtcNow + AuthTimeout;
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            while (socket.State == WebSocketState.Open && !ct.IsCancellationRequested)
            {
                using var receiveTimeout = _user is null ? new CancellationTokenSource(authDeadline - DateTime.UtcNow) : new CancellationTokenSource();
                using var receiveCt = CancellationTokenSource.CreateLinkedTokenSource(ct, receiveTimeout.Token);
                string? text;
                try
                {
                    text = await ReceiveAsync(buffer, receiveCt.Token);
                }
                catch (OperationCanceledException) when (receiveTimeout.IsCancellationRequested && _user is null)
                {
                    await SendErrorAsync("unauthorized", "Authenticate within 10 seconds: send {\"type\":\"auth\",\"token\":\"<access token>\"}.", ct);
                    await CloseAsync(WebSocketCloseStatus.PolicyViolation, "authentication required");
                    return;
                }
                if (text is null) return;
                await HandleFrameAsync(text, ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The client went away or the server is stopping.
        }
        catch (WebSocketException ex)
        {
            logger.LogDebug("Socket {Session} ended: {Message}", SessionId, ex.Message);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>One whole text message, null when the peer closed; oversized frames close the socket with 1009.</summary>
    private async Task<string?> ReceiveAsync(byte[] buffer, CancellationToken ct)
    {
        using var message = new MemoryStream();
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer, ct);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                await CloseAsync(WebSocketCloseStatus.NormalClosure, "bye");
                return null;
            }
            message.Write(buffer, 0, result.Count);
            if (message.Length > MaxFrameBytes)
            {
                await CloseAsync(WebSocketCloseStatus.MessageTooBig, $"frames are limited to {MaxFrameBytes} bytes");
                return null;
            }
            if (!result.EndOfMessage) continue;
            if (result.MessageType != WebSocketMessageType.Text)
            {
                await SendErrorAsync("invalid_frame", "Send JSON in text frames.", ct);
                message.SetLength(0);
                continue;
            }
            return Encoding.UTF8.GetString(message.GetBuffer(), 0, (int)message.Length);
        }
    }

    private async Task HandleFrameAsync(string text, CancellationToken ct)
    {
        JsonElement frame;
        try
        {
            frame = JsonDocument.Parse(text).RootElement.Clone();
        }
        catch (JsonException ex)
        {
            await SendErrorAsync("invalid_json", $"The frame is not valid JSON: {ex.Message}", ct);
            return;
        }
        var type = frame.ValueKind == JsonValueKind.Object && frame.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        if (type == "ping")
        {
            await SendAsync(new { type = "pong", timestamp = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() }, ct);
            return;
        }
        if (type == "auth")
        {
            await AuthenticateAsync(frame, ct);
            return;
        }
        if (_user is null)
        {
            await SendErrorAsync("unauthorized", "Authenticate first: {\"type\":\"auth\",\"token\":\"<access token>\"}.", ct);
            return;
        }
        if (type is null)
        {
            await SendErrorAsync("invalid_frame", "Every frame needs a string 'type'.", ct);
            return;
        }
        await HandleAsync(type, frame, ct);
    }

    private async Task AuthenticateAsync(JsonElement frame, CancellationToken ct)
    {
        var token = frame.TryGetProperty("token", out var tk) && tk.ValueKind == JsonValueKind.String ? tk.GetString() : null;
        await using var scope = scopes.CreateAsyncScope();
        var user = await scope.ServiceProvider.GetRequiredService<TokenAuthenticator>().AuthenticateAsync(token, ct);
        if (user is null)
        {
            await SendErrorAsync("unauthorized", "The token is invalid, expired or revoked.", ct);
            await CloseAsync(WebSocketCloseStatus.PolicyViolation, "invalid token");
            return;
        }
        if (!user.HasScope(RequiredScope))
        {
            await SendErrorAsync(InsufficientScope.Code, MissingScope, ct);
            await CloseAsync(WebSocketCloseStatus.PolicyViolation, "insufficient scope");
            return;
        }
        _user = user;
        await SendAsync(new { type = "authenticated", userId = user.UserId() }, ct);
        await OnAuthenticatedAsync(ct);
    }

    protected static Guid? ReadGuid(JsonElement frame, string name) =>
        frame.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && Guid.TryParse(v.GetString(), out var g) ? g : null;

    protected Task SendErrorAsync(string code, string message, CancellationToken ct) =>
        SendAsync(new { type = "error", code, message }, ct);

    protected async Task SendAsync(object payload, CancellationToken ct)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(payload, Json);
        await _send.WaitAsync(ct);
        try
        {
            if (socket.State == WebSocketState.Open) await socket.SendAsync(bytes, WebSocketMessageType.Text, true, ct);
        }
        finally
        {
            _send.Release();
        }
    }

    protected async Task CloseAsync(WebSocketCloseStatus status, string reason)
    {
        await _send.WaitAsync();
        try
        {
            if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
                await socket.CloseAsync(status, reason, CancellationToken.None);
        }
        finally
        {
            _send.Release();
        }
        await _closing.CancelAsync();
    }

    public void Dispose()
    {
        _closing.Cancel();
        _closing.Dispose();
        _send.Dispose();
        GC.SuppressFinalize(this);
    }
}

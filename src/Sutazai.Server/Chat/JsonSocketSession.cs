using System.Buffers;
using System.Data.Common;
using System.Net.WebSockets;
using System.Security.Claims;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Sutazai.Server.Configuration;
using Sutazai.Server.Identity;
using HttpOptions = Sutazai.Server.Configuration.HttpOptions;

namespace Sutazai.Server.Chat;

/// <summary>
/// What every SutazAI WebSocket shares (/ws/chat, /ws/jarvis): the origin rule (<see cref="SocketOrigins"/>), JSON text
/// frames, authentication by header, query or a first <c>auth</c> frame within 10 seconds, the credential checked again
/// periodically and before every frame that starts work (a credential that no longer holds closes the socket with
/// 1008), the <c>chat</c> scope for API keys, <c>ping</c>/<c>pong</c>, frame size limit (1009), errors in-band. Subclasses handle the authenticated frame types.
/// </summary>
public abstract class JsonSocketSession(WebSocket socket, IServiceScopeFactory scopes, ILogger logger, SocketCredential? credential) : IDisposable
{
    public const int MaxFrameBytes = 64 * 1024;
    protected static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private static readonly TimeSpan AuthTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan CloseReplyTimeout = TimeSpan.FromSeconds(5);
    private readonly SemaphoreSlim _send = new(1, 1);
    // One credential check or replacement at a time, so a periodic check of the old token cannot close a socket that
    // has just sent a fresh one in an auth frame.
    private readonly SemaphoreSlim _checking = new(1, 1);
    private readonly CancellationTokenSource _closing = new();
    private SocketCredential? _credential = credential;
    private int _refused;

    protected IServiceScopeFactory Scopes => scopes;

    protected ClaimsPrincipal User => _credential?.Principal ?? throw new InvalidOperationException("Not authenticated.");

    /// <summary>Cancelled when the socket closes; background work that writes to the socket uses it.</summary>
    protected CancellationToken Closing => _closing.Token;

    public string SessionId { get; } = Guid.NewGuid().ToString("N");

    public Guid? UserId => _credential?.Principal.UserId();

    /// <summary>The frame types this socket understands after authentication, for the unknown-type error.</summary>
    protected abstract string KnownTypes { get; }

    protected abstract Task HandleAsync(string type, JsonElement frame, CancellationToken ct);

    /// <summary>Runs when a socket authenticates (by header, query or auth frame).</summary>
    protected virtual Task OnAuthenticatedAsync(CancellationToken ct) => Task.CompletedTask;

    public const string RequiredScope = ApiScopes.Chat;

    private static readonly string MissingScope = $"This API key lacks the '{RequiredScope}' scope the sockets need.";

    /// <summary>
    /// Accepts the upgrade and runs the session until it ends. Before the upgrade: 403 ProblemDetails for a page of a
    /// foreign origin, 400 for a plain HTTP request, 403 insufficient_scope for a credential without the chat scope.
    /// </summary>
    public static async Task ServeAsync<TSession>(HttpContext http, string path, Func<WebSocket, SocketCredential?, TSession> create, Action<TSession>? opened = null, Action<TSession>? closed = null)
        where TSession : JsonSocketSession
    {
        var services = http.RequestServices;
        var refusal = SocketOrigins.Refusal(http.Request, services.GetRequiredService<IOptions<SutazaiOptions>>().Value.PublicUrl,
            services.GetRequiredService<IOptions<HttpOptions>>().Value.CorsOriginList);
        if (refusal is not null)
        {
            services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(SocketOrigins).FullName!)
                .LogInformation("Refused a {Path} handshake from origin {Origin}", path, http.Request.Headers.Origin.ToString());
            await Problems.Forbidden(refusal).ExecuteAsync(http);
            return;
        }
        if (!http.WebSockets.IsWebSocketRequest)
        {
            await Problems.Status(StatusCodes.Status400BadRequest, "Bad Request", $"This endpoint speaks WebSocket only (see docs/api.md, {path}).").ExecuteAsync(http);
            return;
        }
        var recheckEvery = services.GetRequiredService<IOptions<WebSocketSessionOptions>>().Value.CredentialRecheckInterval;
        if (http.User.Identity?.IsAuthenticated == true && !http.User.HasScope(RequiredScope))
        {
            await InsufficientScope.WriteAsync(http, MissingScope, RequiredScope);
            return;
        }
        var socket = await http.WebSockets.AcceptWebSocketAsync();
        var session = create(socket, SocketCredential.Of(http));
        opened?.Invoke(session);
        try
        {
            await session.RunAsync(recheckEvery, http.RequestAborted);
        }
        finally
        {
            closed?.Invoke(session);
            session.Dispose();
        }
    }

    /// <param name="recheckEvery">How often the credential is checked again while the socket is idle.</param>
    public async Task RunAsync(TimeSpan recheckEvery, CancellationToken aborted)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(aborted, _closing.Token);
        var ct = linked.Token;
        await SendAsync(new { type = "connection", sessionId = SessionId, authenticated = _credential is not null }, ct);
        if (_credential is not null) await OnAuthenticatedAsync(ct);
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        // Watchers beside the receive loop: they refuse by sending the close, never by cancelling the pending receive
        // (which would abort the socket before the error frame and the close reach the peer).
        using var stopWatchers = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var watchers = Task.WhenAll(
            RequireAuthenticationAsync(stopWatchers.Token),
            RecheckPeriodicallyAsync(recheckEvery, stopWatchers.Token));
        try
        {
            while (socket.State == WebSocketState.Open && !ct.IsCancellationRequested)
            {
                var frame = await ReceiveAsync(buffer, ct);
                if (frame is null) return;
                // A frame the peer sent before it saw our close is not acted on.
                if (Volatile.Read(ref _refused) == 0) await HandleFrameAsync(frame.Value, ct);
            }
            await AwaitCloseReplyAsync(buffer, ct);
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
            await stopWatchers.CancelAsync();
            await watchers;
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>A socket that connected without a credential must send an <c>auth</c> frame within <see cref="AuthTimeout"/>.</summary>
    private async Task RequireAuthenticationAsync(CancellationToken ct)
    {
        if (_credential is not null) return;
        try
        {
            await Task.Delay(AuthTimeout, ct);
            await _checking.WaitAsync(ct);
            try
            {
                if (_credential is null)
                    await RefuseAsync("Authenticate within 10 seconds: send {\"type\":\"auth\",\"token\":\"<access token>\"}.", "authentication required", ct);
            }
            finally
            {
                _checking.Release();
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The socket ended first.
        }
        catch (Exception ex) when (ex is WebSocketException or IOException)
        {
            logger.LogDebug("Socket {Session} ended while it was refused: {Message}", SessionId, ex.Message);
        }
    }

    /// <summary>After this side sent its close (a refused credential), waits for the peer's, so the close handshake completes.</summary>
    private async Task AwaitCloseReplyAsync(byte[] buffer, CancellationToken ct)
    {
        if (socket.State != WebSocketState.CloseSent) return;
        try
        {
            while (socket.State == WebSocketState.CloseSent) await socket.ReceiveAsync(buffer, ct);
        }
        catch (Exception ex) when (ex is OperationCanceledException or WebSocketException or IOException)
        {
            // The peer went away without answering our close; the socket is over either way.
        }
    }

    private async Task RecheckPeriodicallyAsync(TimeSpan every, CancellationToken ct)
    {
        try
        {
            using var timer = new PeriodicTimer(every);
            while (await timer.WaitForNextTickAsync(ct))
            {
                if (_credential is null) continue;
                try
                {
                    if (!await RecheckAsync(ct)) return;
                }
                catch (Exception ex) when (ex is DbException or InvalidOperationException or TimeoutException)
                {
                    // The store is unreachable: REST would fail too, but an idle socket is not closed for it.
                    logger.LogWarning(ex, "Socket {Session}: its credential could not be checked again; trying at the next interval", SessionId);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The socket ended.
        }
        catch (Exception ex) when (ex is WebSocketException or IOException)
        {
            logger.LogDebug("Socket {Session} ended while it was refused: {Message}", SessionId, ex.Message);
        }
    }

    /// <summary>
    /// Checks the credential again (as REST checks one on every request). When it no longer holds — the account was
    /// deactivated, its password changed or it logged out everywhere, the token or cookie expired, the API key was
    /// revoked — sends a last <c>unauthorized</c> error, closes with 1008 and answers false.
    /// </summary>
    private async Task<bool> RecheckAsync(CancellationToken ct)
    {
        string reason;
        await _checking.WaitAsync(ct);
        try
        {
            if (Volatile.Read(ref _refused) != 0) return false;
            if (_credential is not { } current) return true;
            await using var scope = scopes.CreateAsyncScope();
            var check = await scope.ServiceProvider.GetRequiredService<TokenAuthenticator>().RecheckAsync(current, ct);
            if (check is CredentialCheck.Valid valid)
            {
                _credential = valid.Credential;
                return true;
            }
            reason = ((CredentialCheck.Invalid)check).Reason;
        }
        finally
        {
            _checking.Release();
        }
        logger.LogInformation("Socket {Session} of user {UserId} closed: {Reason}", SessionId, UserId, reason);
        await RefuseAsync(reason, "credential no longer valid", ct);
        return false;
    }

    /// <summary>
    /// The last words to a peer whose credential is refused: an error frame (<c>unauthorized</c>, or <c>insufficient_scope</c> for a key without the chat scope), then close 1008. Only
    /// the close is sent here; the receive loop reads the peer's answer (so no second receive runs beside it), for at
    /// most <see cref="CloseReplyTimeout"/>.
    /// </summary>
    private async Task RefuseAsync(string message, string closeReason, CancellationToken ct, string code = "unauthorized")
    {
        if (Interlocked.Exchange(ref _refused, 1) != 0) return;
        var bytes = JsonSerializer.SerializeToUtf8Bytes(new { type = "error", code, message }, Json);
        await _send.WaitAsync(ct);
        try
        {
            if (socket.State != WebSocketState.Open) return;
            await socket.SendAsync(bytes, WebSocketMessageType.Text, true, ct);
            await socket.CloseOutputAsync(WebSocketCloseStatus.PolicyViolation, closeReason, ct);
        }
        finally
        {
            _send.Release();
        }
        _closing.CancelAfter(CloseReplyTimeout);
    }

    /// <summary>One whole JSON text message, null when the peer closed; oversized frames close the socket with 1009.</summary>
    private async Task<JsonElement?> ReceiveAsync(byte[] buffer, CancellationToken ct)
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
            // The rules a JSON request body meets (UTF-8, well-formed, no lone surrogate); a bad frame is answered in
            // band and the socket stays open.
            if (Hosting.JsonInput.Problem(message.GetBuffer().AsSpan(0, (int)message.Length), "The frame") is { } problem)
            {
                await SendErrorAsync("invalid_json", problem, ct);
                message.SetLength(0);
                continue;
            }
            // Checked above (which allows a leading byte order mark, as JSON bodies do), so parsing cannot fail.
            var frame = message.GetBuffer().AsMemory(0, (int)message.Length);
            using var document = JsonDocument.Parse(frame[Hosting.JsonInput.BomLength(frame.Span)..]);
            return document.RootElement.Clone();
        }
    }

    private async Task HandleFrameAsync(JsonElement frame, CancellationToken ct)
    {
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
        if (_credential is null)
        {
            await SendErrorAsync("unauthorized", "Authenticate first: {\"type\":\"auth\",\"token\":\"<access token>\"}.", ct);
            return;
        }
        if (type is null)
        {
            await SendErrorAsync("invalid_frame", "Every frame needs a string 'type'.", ct);
            return;
        }
        // Every frame that may start work is preceded by the check a REST request would pass. A stop only ends the
        // user's own reply, so it acts at once: a check in front of it would let the reply run on meanwhile.
        if (type != "stop" && !await RecheckAsync(ct)) return;
        await HandleAsync(type, frame, ct);
    }

    /// <summary>An <c>auth</c> frame: the first credential of the socket, or a fresh token replacing one about to expire.</summary>
    private async Task AuthenticateAsync(JsonElement frame, CancellationToken ct)
    {
        var token = frame.TryGetProperty("token", out var tk) && tk.ValueKind == JsonValueKind.String ? tk.GetString() : null;
        CredentialCheck check;
        var lacksScope = false;
        await _checking.WaitAsync(ct);
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            check = await scope.ServiceProvider.GetRequiredService<TokenAuthenticator>().AuthenticateAsync(token, ct);
            if (check is CredentialCheck.Valid valid && !valid.Credential.Principal.HasScope(RequiredScope)) lacksScope = true;
            else if (check is CredentialCheck.Valid accepted) _credential = accepted.Credential;
        }
        finally
        {
            _checking.Release();
        }
        if (check is CredentialCheck.Invalid invalid)
        {
            await RefuseAsync(invalid.Reason, "invalid token", ct);
            return;
        }
        if (lacksScope)
        {
            await RefuseAsync(MissingScope, "insufficient scope", ct, InsufficientScope.Code);
            return;
        }
        await SendAsync(new { type = "authenticated", userId = UserId }, ct);
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

    /// <summary>Runs once when the socket's session ends (before its resources are released).</summary>
    protected virtual void OnClosed()
    {
    }

    public void Dispose()
    {
        OnClosed();
        _closing.Cancel();
        _closing.Dispose();
        _send.Dispose();
        _checking.Dispose();
        GC.SuppressFinalize(this);
    }
}

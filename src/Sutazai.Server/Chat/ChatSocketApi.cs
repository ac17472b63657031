using System.Buffers;
using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Security.Claims;
using System.Text;
using System.Text.Json;
using Sutazai.Server.Conversations;
using Sutazai.Server.Identity;
using Sutazai.Server.Inference;

namespace Sutazai.Server.Chat;

/// <summary>Open chat sockets by user, so a reply started anywhere is shown on the user's other sockets too.</summary>
public sealed class ChatSocketRegistry
{
    private readonly ConcurrentDictionary<string, ChatSocketSession> _sessions = new();

    public ChatSocketRegistry(ReplyHub hub) => hub.ReplyStarted += reply =>
    {
        foreach (var session in _sessions.Values)
        {
            if (session.UserId == reply.UserId && session.IsWatching(reply.ConversationId) && !session.IsStreamingLocally(reply.ConversationId))
                session.Follow(reply, stream: true);
        }
    };

    public void Add(ChatSocketSession session) => _sessions[session.SessionId] = session;

    public void Remove(ChatSocketSession session) => _sessions.TryRemove(session.SessionId, out _);
}

public static class ChatSocketApi
{
    public const int MaxFrameBytes = 64 * 1024;

    public static IEndpointRouteBuilder MapChatSockets(this IEndpointRouteBuilder routes)
    {
        routes.Map("/ws/chat", HandleAsync).WithTags("Chat").ExcludeFromDescription();
        return routes;
    }

    private static async Task HandleAsync(HttpContext http, ChatSocketRegistry registry, IServiceScopeFactory scopes, ILogger<ChatSocketSession> logger)
    {
        if (!http.WebSockets.IsWebSocketRequest)
        {
            http.Response.StatusCode = StatusCodes.Status400BadRequest;
            await http.Response.WriteAsJsonAsync(new { title = "Bad Request", status = 400, detail = "This endpoint speaks WebSocket only (see docs/api.md, /ws/chat)." });
            return;
        }
        var socket = await http.WebSockets.AcceptWebSocketAsync();
        var session = new ChatSocketSession(socket, scopes, logger, http.User.Identity?.IsAuthenticated == true ? http.User : null);
        registry.Add(session);
        try
        {
            await session.RunAsync(http.RequestAborted);
        }
        finally
        {
            registry.Remove(session);
            session.Dispose();
        }
    }
}

/// <summary>One /ws/chat connection: JSON text frames in, JSON text frames out (protocol in docs/api.md).</summary>
public sealed class ChatSocketSession(WebSocket socket, IServiceScopeFactory scopes, ILogger logger, ClaimsPrincipal? principal) : IDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private static readonly TimeSpan AuthTimeout = TimeSpan.FromSeconds(10);
    private readonly SemaphoreSlim _send = new(1, 1);
    private readonly ConcurrentDictionary<Guid, byte> _watching = new();
    private readonly ConcurrentDictionary<Guid, byte> _local = new();
    private readonly CancellationTokenSource _closing = new();
    private ClaimsPrincipal? _user = principal;
    private Guid? _lastConversation;

    public string SessionId { get; } = Guid.NewGuid().ToString("N");

    public Guid? UserId => _user?.UserId();

    public bool IsWatching(Guid conversationId) => _watching.ContainsKey(conversationId);

    public bool IsStreamingLocally(Guid conversationId) => _local.ContainsKey(conversationId);

    public async Task RunAsync(CancellationToken aborted)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(aborted, _closing.Token);
        var ct = linked.Token;
        await SendAsync(new { type = "connection", sessionId = SessionId, authenticated = _user is not null }, ct);
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
            logger.LogDebug("Chat socket {Session} ended: {Message}", SessionId, ex.Message);
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
            if (message.Length > ChatSocketApi.MaxFrameBytes)
            {
                await CloseAsync(WebSocketCloseStatus.MessageTooBig, $"frames are limited to {ChatSocketApi.MaxFrameBytes} bytes");
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
        switch (type)
        {
            case "chat":
                await ChatAsync(frame, ct);
                break;
            case "stop":
                await StopAsync(frame, ct);
                break;
            case "get_history":
                await HistoryAsync(frame, ct);
                break;
            case null:
                await SendErrorAsync("invalid_frame", "Every frame needs a string 'type'.", ct);
                break;
            default:
                await SendErrorAsync("unknown_type", $"Unknown frame type '{type}'. Known: ping, auth, chat, stop, get_history.", ct);
                break;
        }
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
        _user = user;
        await SendAsync(new { type = "authenticated", userId = user.UserId() }, ct);
    }

    private static Guid? ReadGuid(JsonElement frame, string name) =>
        frame.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && Guid.TryParse(v.GetString(), out var g) ? g : null;

    private async Task ChatAsync(JsonElement frame, CancellationToken ct)
    {
        var message = frame.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null;
        var model = frame.TryGetProperty("model", out var md) && md.ValueKind == JsonValueKind.String ? md.GetString() : null;
        var stream = !frame.TryGetProperty("stream", out var st) || st.ValueKind != JsonValueKind.False;
        GenerateOptions? options = null;
        if (frame.TryGetProperty("options", out var o) && o.ValueKind == JsonValueKind.Object)
        {
            try
            {
                options = o.Deserialize<GenerateOptions>(Json);
            }
            catch (JsonException ex)
            {
                await SendErrorAsync("invalid_request", $"options: {ex.Message}", ct);
                return;
            }
        }

        await using var scope = scopes.CreateAsyncScope();
        var services = scope.ServiceProvider;
        var errors = new List<string>();
        services.GetRequiredService<GenerationRunner>().ValidateOptions(options, (field, text) => errors.Add($"{field}: {text}"));
        if (errors.Count > 0)
        {
            await SendErrorAsync("invalid_request", string.Join(" ", errors), ct);
            return;
        }
        var conversations = services.GetRequiredService<ConversationService>();
        var userId = _user!.UserId();
        var collectionIds = frame.TryGetProperty("collectionIds", out var cids) && cids.ValueKind == JsonValueKind.Array
            ? cids.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String && Guid.TryParse(e.GetString(), out var g) ? g : Guid.Empty).ToList()
            : null;
        var useKnowledge = frame.TryGetProperty("useKnowledge", out var uk) && uk.ValueKind == JsonValueKind.True;
        var (knowledge, unreadable) = await conversations.KnowledgeForAsync(userId, collectionIds, useKnowledge, ct);
        if (unreadable is not null)
        {
            await SendErrorAsync("invalid_request", "collectionIds: " + unreadable, ct);
            return;
        }
        var conversationId = ReadGuid(frame, "conversationId");
        var conversation = conversationId is { } cid
            ? await conversations.FindAsync(userId, cid, ct)
            : await conversations.CreateAsync(userId, new CreateConversationRequest(null, model, null), ct);
        if (conversation is null)
        {
            await SendErrorAsync("not_found", "No conversation with that id.", ct);
            return;
        }
        _watching[conversation.Id] = 0;
        _lastConversation = conversation.Id;
        _local[conversation.Id] = 0;
        var result = await conversations.StartReplyAsync(userId, conversation, message, null, null, model, options, ct, edit: false, knowledge);
        if (result is StartReplyResult.Rejected rejected)
        {
            _local.TryRemove(conversation.Id, out _);
            var code = rejected.Status switch { 404 => "not_found", 409 => "conflict", 422 => "invalid_request", _ => "unavailable" };
            await SendErrorAsync(code, rejected.Detail, ct);
            return;
        }
        Follow(((StartReplyResult.Started)result).Reply, stream, local: true);
    }

    /// <summary>Streams a reply's events to this socket in the background, so the socket keeps reading (stop, ping).</summary>
    public void Follow(RunningReply reply, bool stream, bool local = false) => _ = Task.Run(async () =>
    {
        var ct = _closing.Token;
        try
        {
            await foreach (var e in reply.WatchAsync(ct))
            {
                switch (e)
                {
                    case ReplyEvent.Started s:
                        await SendAsync(new { type = "message_received", conversationId = s.ConversationId, userMessageId = s.UserMessage.Id, assistantMessageId = s.AssistantMessageId, content = s.UserMessage.Content }, ct);
                        if (stream) await SendAsync(new { type = "stream_start", conversationId = s.ConversationId, messageId = s.AssistantMessageId, model = s.Model }, ct);
                        break;
                    case ReplyEvent.Token token when stream:
                        await SendAsync(new { type = "stream_chunk", conversationId = reply.ConversationId, content = token.Content }, ct);
                        break;
                    case ReplyEvent.Ended ended when stream:
                        await SendAsync(new { type = "stream_end", conversationId = reply.ConversationId, messageId = ended.Message.Id, fullResponse = ended.Message.Content, status = ended.Message.Status, usage = ended.Message.Usage, timings = ended.Message.Timings, citations = ended.Message.Citations }, ct);
                        break;
                    case ReplyEvent.Ended ended:
                        await SendAsync(new { type = "response", conversationId = reply.ConversationId, messageId = ended.Message.Id, content = ended.Message.Content, status = ended.Message.Status, usage = ended.Message.Usage, citations = ended.Message.Citations }, ct);
                        break;
                    case ReplyEvent.Failed failed:
                        await SendAsync(new { type = "error", code = "generation_failed", message = failed.Detail, conversationId = reply.ConversationId, messageId = failed.Message?.Id }, ct);
                        break;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or WebSocketException or ObjectDisposedException)
        {
            // The socket closed while following; the reply itself goes on and is stored.
        }
        finally
        {
            if (local) _local.TryRemove(reply.ConversationId, out _);
        }
    });

    private async Task StopAsync(JsonElement frame, CancellationToken ct)
    {
        var conversationId = ReadGuid(frame, "conversationId") ?? _lastConversation;
        using var scope = scopes.CreateScope();
        var hub = scope.ServiceProvider.GetRequiredService<ReplyHub>();
        if (conversationId is null || hub.Get(conversationId.Value, _user!.UserId()) is not { } reply)
        {
            await SendErrorAsync("not_generating", "No reply is being generated in that conversation.", ct);
            return;
        }
        await reply.Stop.CancelAsync();
    }

    private async Task HistoryAsync(JsonElement frame, CancellationToken ct)
    {
        if (ReadGuid(frame, "conversationId") is not { } conversationId)
        {
            await SendErrorAsync("invalid_request", "get_history needs a conversationId.", ct);
            return;
        }
        await using var scope = scopes.CreateAsyncScope();
        var conversations = scope.ServiceProvider.GetRequiredService<ConversationService>();
        var conversation = await conversations.FindAsync(_user!.UserId(), conversationId, ct);
        if (conversation is null)
        {
            await SendErrorAsync("not_found", "No conversation with that id.", ct);
            return;
        }
        _watching[conversationId] = 0;
        var all = await conversations.AllMessagesAsync(conversationId, ct);
        await SendAsync(new { type = "history", conversationId, title = conversation.Title, messages = conversations.ActiveBranch(all, conversation.ActiveLeafId) }, ct);
    }

    private Task SendErrorAsync(string code, string message, CancellationToken ct) =>
        SendAsync(new { type = "error", code, message }, ct);

    private async Task SendAsync(object payload, CancellationToken ct)
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

    private async Task CloseAsync(WebSocketCloseStatus status, string reason)
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
    }
}

using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Text.Json;
using Sutazai.Server.Conversations;
using Sutazai.Server.Identity;
using Sutazai.Server.Inference;

namespace Sutazai.Server.Chat;

public static class ChatSocketApi
{
    public static IEndpointRouteBuilder MapChatSockets(this IEndpointRouteBuilder routes)
    {
        routes.Map("/ws/chat", HandleAsync).WithTags("Chat").ExcludeFromDescription();
        return routes;
    }

    private static Task HandleAsync(HttpContext http, ReplyHub hub, IServiceScopeFactory scopes, ILogger<ChatSocketSession> logger) =>
        JsonSocketSession.ServeAsync(http, "/ws/chat", (socket, user) => new ChatSocketSession(socket, hub, scopes, logger, user));
}

/// <summary>
/// One /ws/chat connection: JSON text frames in, JSON text frames out (protocol in docs/api.md). The socket follows
/// every reply that starts in a conversation it watches (one it chatted in or asked the history of), its own and those
/// started elsewhere (another tab, the REST API, another node), through one subscription on <see cref="ReplyHub"/>:
/// a <c>chat</c> frame only starts the reply, and the reply reaches the socket the same way as any other.
/// </summary>
public sealed class ChatSocketSession(WebSocket socket, ReplyHub hub, IServiceScopeFactory scopes, ILogger logger, SocketCredential? credential)
    : JsonSocketSession(socket, scopes, logger, credential)
{
    /// <summary>Watched conversations, each with whether its replies stream token by token (the last chat frame's <c>stream</c>).</summary>
    private readonly ConcurrentDictionary<Guid, bool> _watching = new();
    private IDisposable? _subscription;
    private Guid? _lastConversation;

    private void Watch(Guid conversationId, bool stream)
    {
        _watching[conversationId] = stream;
        if (Volatile.Read(ref _subscription) is not null) return;
        var subscription = hub.WatchUser(User.UserId(), OnReplyStarted);
        if (Interlocked.CompareExchange(ref _subscription, subscription, null) is not null) subscription.Dispose();
    }

    private void OnReplyStarted(RunningReply reply)
    {
        if (reply.UserId == UserId && _watching.TryGetValue(reply.ConversationId, out var stream)) Follow(reply, stream);
    }

    protected override void OnClosed() => Interlocked.Exchange(ref _subscription, null)?.Dispose();

    protected override string KnownTypes => "ping, auth, chat, stop, get_history";

    protected override async Task HandleAsync(string type, JsonElement frame, CancellationToken ct)
    {
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
            default:
                await SendErrorAsync("unknown_type", $"Unknown frame type '{type}'. Known: {KnownTypes}.", ct);
                break;
        }
    }

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

        await using var scope = Scopes.CreateAsyncScope();
        var services = scope.ServiceProvider;
        var errors = new List<string>();
        services.GetRequiredService<GenerationRunner>().ValidateOptions(options, (field, text) => errors.Add($"{field}: {text}"));
        if (errors.Count > 0)
        {
            await SendErrorAsync("invalid_request", string.Join(" ", errors), ct);
            return;
        }
        var conversations = services.GetRequiredService<ConversationStore>();
        var userId = User.UserId();
        var collectionIds = frame.TryGetProperty("collectionIds", out var cids) && cids.ValueKind == JsonValueKind.Array
            ? cids.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String && Guid.TryParse(e.GetString(), out var g) ? g : Guid.Empty).ToList()
            : null;
        var useKnowledge = frame.TryGetProperty("useKnowledge", out var uk) && uk.ValueKind == JsonValueKind.True;
        var (knowledge, unreadable) = await services.GetRequiredService<ReplyGrounding>().KnowledgeForAsync(userId, collectionIds, useKnowledge, ct);
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
        Watch(conversation.Id, stream);
        _lastConversation = conversation.Id;
        // A started reply reaches this socket through the hub subscription (OnReplyStarted), like any other.
        var result = await services.GetRequiredService<ReplyPipeline>().StartReplyAsync(userId, conversation, message, null, null, model, options, ct, edit: false, knowledge);
        if (result is StartReplyResult.Rejected rejected) await SendErrorAsync(ReplyOutcomes.Code(rejected.Reason), rejected.Detail, ct);
    }

    /// <summary>Streams a reply's events to this socket in the background, so the socket keeps reading (stop, ping).</summary>
    private void Follow(RunningReply reply, bool stream) => _ = Task.Run(async () =>
    {
        var ct = Closing;
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
    });

    private async Task StopAsync(JsonElement frame, CancellationToken ct)
    {
        var conversationId = ReadGuid(frame, "conversationId") ?? _lastConversation;
        if (conversationId is null || hub.Get(conversationId.Value, User.UserId()) is not { } reply)
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
        await using var scope = Scopes.CreateAsyncScope();
        var conversations = scope.ServiceProvider.GetRequiredService<ConversationStore>();
        var conversation = await conversations.FindAsync(User.UserId(), conversationId, ct);
        if (conversation is null)
        {
            await SendErrorAsync("not_found", "No conversation with that id.", ct);
            return;
        }
        Watch(conversationId, _watching.GetValueOrDefault(conversationId, true));
        var all = await conversations.AllMessagesAsync(conversationId, ct);
        await SendAsync(new { type = "history", conversationId, title = conversation.Title, messages = conversations.ActiveBranch(all, conversation.ActiveLeafId) }, ct);
    }

}

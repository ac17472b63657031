using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.TestHost;
using Microsoft.EntityFrameworkCore;
using Sutazai.Server.Tests.Conversations;
using Sutazai.Server.Tests.Infrastructure;
using Expect = Sutazai.Inference.Gguf.DeterministicModelSpec.DefaultExpectations;

namespace Sutazai.Server.Tests.Chat;

/// <summary>A test-side /ws/chat client: JSON text frames both ways.</summary>
public sealed class ChatClient(WebSocket socket) : IAsyncDisposable
{
    public WebSocket Socket { get; } = socket;

    public static async Task<ChatClient> ConnectAsync(TestApp app, string? accessToken, string path = "/ws/chat")
    {
        var client = app.Server.CreateWebSocketClient();
        var uri = new Uri("ws://localhost" + path + (accessToken is null ? "" : "?access_token=" + Uri.EscapeDataString(accessToken)));
        return new ChatClient(await client.ConnectAsync(uri, CancellationToken.None));
    }

    public Task SendAsync(object frame) => SendRawAsync(JsonSerializer.Serialize(frame));

    public async Task<JsonElement> ReadConnectionAsync() => (await ReceiveAsync())!.Value;

    public Task SendRawAsync(string text) => Socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, CancellationToken.None);

    /// <summary>The next frame, or null when the server closed the socket.</summary>
    public async Task<JsonElement?> ReceiveAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(20));
        var buffer = new byte[64 * 1024];
        using var message = new MemoryStream();
        while (true)
        {
            var result = await Socket.ReceiveAsync(buffer, cts.Token);
            if (result.MessageType == WebSocketMessageType.Close) return null;
            message.Write(buffer, 0, result.Count);
            if (result.EndOfMessage) return JsonDocument.Parse(message.ToArray()).RootElement.Clone();
        }
    }

    /// <summary>Frames until one of <paramref name="type"/> arrives (included).</summary>
    public async Task<List<JsonElement>> ReceiveUntilAsync(string type)
    {
        var frames = new List<JsonElement>();
        while (await ReceiveAsync() is { } frame)
        {
            frames.Add(frame);
            if (frame.GetProperty("type").GetString() == type) return frames;
        }
        throw new InvalidOperationException($"The socket closed before a '{type}' frame; got {string.Join(", ", frames.Select(f => f.GetProperty("type").GetString()))}");
    }

    public async ValueTask DisposeAsync()
    {
        if (Socket.State == WebSocketState.Open) await Socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
        Socket.Dispose();
    }
}

public sealed class ChatSocketTests(ConversationAppFixture fixture) : IClassFixture<ConversationAppFixture>
{
    private TestApp App => fixture.App;

    private async Task<Tokens> UserAsync()
    {
        using var anon = App.Client();
        return (await Accounts.RegisterAndLoginAsync(anon)).Tokens;
    }

    private static string Type(JsonElement frame) => frame.GetProperty("type").GetString()!;

    [Fact]
    public async Task Connect_Ping_AndChatStreamsChunks_ThenStoresTheReply()
    {
        var tokens = await UserAsync();
        await using var chat = await ChatClient.ConnectAsync(App, tokens.AccessToken);
        var hello = (await chat.ReceiveAsync())!.Value;
        Assert.Equal("connection", Type(hello));
        Assert.True(hello.GetProperty("authenticated").GetBoolean());
        Assert.Matches("^[0-9a-f]{32}$", hello.GetProperty("sessionId").GetString());

        await chat.SendAsync(new { type = "ping" });
        var pong = (await chat.ReceiveAsync())!.Value;
        Assert.Equal("pong", Type(pong));
        Assert.True(pong.GetProperty("timestamp").GetInt64() > 0);

        await chat.SendAsync(new { type = "chat", message = "Hi over a socket", options = new { temperature = 0 } });
        var frames = await chat.ReceiveUntilAsync("stream_end");
        Assert.Equal(["message_received", "stream_start"], frames.Take(2).Select(Type).ToArray());
        var chunks = frames.Where(f => Type(f) == "stream_chunk").Select(f => f.GetProperty("content").GetString()).ToList();
        Assert.Equal(Expect.ChatReplyTokens, chunks.Count);
        Assert.Equal(Expect.ChatReply, string.Concat(chunks));
        var end = frames[^1];
        Assert.Equal(Expect.ChatReply, end.GetProperty("fullResponse").GetString());
        Assert.Equal(Expect.ChatReplyTokens, end.GetProperty("usage").GetProperty("completionTokens").GetInt32());
        var messageId = end.GetProperty("messageId").GetGuid();
        var conversationId = frames[0].GetProperty("conversationId").GetGuid();
        var stored = await App.WithDbAsync(db => db.Messages.AsNoTracking().SingleAsync(m => m.Id == messageId));
        Assert.Equal(Expect.ChatReply, stored.Content);
        Assert.Equal(conversationId, stored.ConversationId);

        await chat.SendAsync(new { type = "get_history", conversationId });
        var history = (await chat.ReceiveAsync())!.Value;
        Assert.Equal("history", Type(history));
        Assert.Equal(["Hi over a socket", Expect.ChatReply], history.GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("content").GetString()!).ToArray());
    }

    [Fact]
    public async Task NonStreaming_SendsOneResponse()
    {
        var tokens = await UserAsync();
        await using var chat = await ChatClient.ConnectAsync(App, tokens.AccessToken);
        await chat.ReceiveAsync();
        await chat.SendAsync(new { type = "chat", message = "once", stream = false, options = new { temperature = 0 } });
        var frames = await chat.ReceiveUntilAsync("response");
        Assert.DoesNotContain(frames, f => Type(f) is "stream_chunk" or "stream_start");
        Assert.Equal(Expect.ChatReply, frames[^1].GetProperty("content").GetString());
    }

    [Fact]
    public async Task MalformedFrames_GetErrors_AndTheSocketStaysOpen()
    {
        var tokens = await UserAsync();
        await using var chat = await ChatClient.ConnectAsync(App, tokens.AccessToken);
        await chat.ReceiveAsync();
        await chat.SendRawAsync("{not json");
        var error = (await chat.ReceiveAsync())!.Value;
        Assert.Equal("error", Type(error));
        Assert.Equal("invalid_json", error.GetProperty("code").GetString());
        await chat.SendAsync(new { type = "teleport" });
        Assert.Equal("unknown_type", (await chat.ReceiveAsync())!.Value.GetProperty("code").GetString());
        await chat.SendAsync(new { nothing = 1 });
        Assert.Equal("invalid_frame", (await chat.ReceiveAsync())!.Value.GetProperty("code").GetString());
        await chat.SendAsync(new { type = "chat", message = "x", options = new { temperature = 7 } });
        var invalid = (await chat.ReceiveAsync())!.Value;
        Assert.Equal("invalid_request", invalid.GetProperty("code").GetString());
        Assert.Contains("options.temperature", invalid.GetProperty("message").GetString());
        await chat.SendAsync(new { type = "get_history", conversationId = Guid.NewGuid() });
        Assert.Equal("not_found", (await chat.ReceiveAsync())!.Value.GetProperty("code").GetString());
        await chat.SendAsync(new { type = "ping" });
        Assert.Equal("pong", Type((await chat.ReceiveAsync())!.Value));
        Assert.Equal(WebSocketState.Open, chat.Socket.State);
    }

    [Fact]
    public async Task OversizedFrame_ClosesWith1009()
    {
        var tokens = await UserAsync();
        await using var chat = await ChatClient.ConnectAsync(App, tokens.AccessToken);
        await chat.ReceiveAsync();
        await chat.SendAsync(new { type = "chat", message = new string('x', 70_000) });
        Assert.Null(await chat.ReceiveAsync());
        Assert.Equal(WebSocketCloseStatus.MessageTooBig, chat.Socket.CloseStatus);
    }

    [Fact]
    public async Task FirstMessageAuth_Works_AndABadTokenClosesWith1008()
    {
        var tokens = await UserAsync();
        await using (var chat = await ChatClient.ConnectAsync(App, null))
        {
            Assert.False((await chat.ReceiveAsync())!.Value.GetProperty("authenticated").GetBoolean());
            await chat.SendAsync(new { type = "chat", message = "hi" });
            Assert.Equal("unauthorized", (await chat.ReceiveAsync())!.Value.GetProperty("code").GetString());
            await chat.SendAsync(new { type = "auth", token = tokens.AccessToken });
            Assert.Equal("authenticated", Type((await chat.ReceiveAsync())!.Value));
            await chat.SendAsync(new { type = "chat", message = "now?", options = new { temperature = 0 } });
            Assert.Equal(Expect.ChatReply, (await chat.ReceiveUntilAsync("stream_end"))[^1].GetProperty("fullResponse").GetString());
        }
        await using var bad = await ChatClient.ConnectAsync(App, null);
        await bad.ReceiveAsync();
        await bad.SendAsync(new { type = "auth", token = "not.a.token" });
        Assert.Equal("unauthorized", (await bad.ReceiveAsync())!.Value.GetProperty("code").GetString());
        Assert.Null(await bad.ReceiveAsync());
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, bad.Socket.CloseStatus);
    }

    [Fact]
    public async Task ApiKeys_AuthenticateSocketsToo_InTheQueryOrTheFirstMessage()
    {
        var tokens = await UserAsync();
        using var client = App.Client(tokens.AccessToken);
        var created = await client.PostAsJsonAsync("/api/v1/keys", new { name = "socket" });
        Assert.Equal(System.Net.HttpStatusCode.Created, created.StatusCode);
        var key = (await created.ReadJsonAsync()).GetProperty("key").GetString()!;

        await using (var byQuery = await ChatClient.ConnectAsync(App, key))
            Assert.True((await byQuery.ReadConnectionAsync()).GetProperty("authenticated").GetBoolean());
        await using var byMessage = await ChatClient.ConnectAsync(App, null);
        await byMessage.ReceiveAsync();
        await byMessage.SendAsync(new { type = "auth", token = key });
        Assert.Equal("authenticated", Type((await byMessage.ReceiveAsync())!.Value));
    }

    [Fact]
    public async Task GroundedChat_EndsWithCitations_AndForeignCollectionsAreRefused()
    {
        var tokens = await UserAsync();
        using var client = App.Client(tokens.AccessToken);
        var collectionId = (await (await client.PostAsJsonAsync("/api/v1/collections", new { name = "Sky" })).ReadJsonAsync()).GetProperty("id").GetGuid();
        var form = new MultipartFormDataContent();
        form.Add(new ByteArrayContent(Encoding.UTF8.GetBytes("The sky looks blue because air scatters short wavelengths of sunlight.")), "file", "sky.txt");
        form.Add(new StringContent(collectionId.ToString()), "collectionId");
        var docId = (await (await client.PostAsync("/api/v1/documents", form)).ReadJsonAsync()).GetProperty("documents")[0].GetProperty("id").GetGuid();
        Assert.Equal("indexed", (await Documents.WaitIndexedAsync(client, docId)).GetProperty("status").GetString());

        await using var chat = await ChatClient.ConnectAsync(App, tokens.AccessToken);
        await chat.ReceiveAsync();
        await chat.SendAsync(new { type = "chat", message = "Why is the sky blue?", collectionIds = new[] { collectionId }, options = new { temperature = 0 } });
        var end = (await chat.ReceiveUntilAsync("stream_end"))[^1];
        Assert.Equal(docId, Assert.Single(end.GetProperty("citations").EnumerateArray()).GetProperty("documentId").GetGuid());

        var stranger = await UserAsync();
        await using var other = await ChatClient.ConnectAsync(App, stranger.AccessToken);
        await other.ReceiveAsync();
        await other.SendAsync(new { type = "chat", message = "Why is the sky blue?", collectionIds = new[] { collectionId } });
        var refused = await other.ReceiveUntilAsync("error");
        Assert.Equal("invalid_request", refused[^1].GetProperty("code").GetString());
    }

    [Fact]
    public async Task Stop_EndsTheStreamWithTheStoppedPartial()
    {
        var tokens = await UserAsync();
        await using var chat = await ChatClient.ConnectAsync(App, tokens.AccessToken);
        await chat.ReceiveAsync();
        await chat.SendAsync(new { type = "chat", message = "loop", model = ConversationAppFixture.Looping, options = new { temperature = 0, maxTokens = 16000 } });
        var chunks = 0;
        while (await chat.ReceiveAsync() is { } frame)
        {
            if (Type(frame) == "stream_chunk" && ++chunks == 10) break;
        }
        await chat.SendAsync(new { type = "stop" });
        var rest = await chat.ReceiveUntilAsync("stream_end");
        var end = rest[^1];
        Assert.Equal("stopped", end.GetProperty("status").GetString());
        Assert.StartsWith(Expect.ChatReply, end.GetProperty("fullResponse").GetString());
    }

    [Fact]
    public async Task AReplyIsVisibleOnTheSameUsersOtherSockets_NotOnOthers()
    {
        var tokens = await UserAsync();
        var stranger = await UserAsync();
        await using var first = await ChatClient.ConnectAsync(App, tokens.AccessToken);
        await using var second = await ChatClient.ConnectAsync(App, tokens.AccessToken);
        await using var other = await ChatClient.ConnectAsync(App, stranger.AccessToken);
        await first.ReceiveAsync();
        await second.ReceiveAsync();
        await other.ReceiveAsync();

        await first.SendAsync(new { type = "chat", message = "start", options = new { temperature = 0 } });
        var conversationId = (await first.ReceiveUntilAsync("stream_end"))[0].GetProperty("conversationId").GetGuid();
        await second.SendAsync(new { type = "get_history", conversationId });
        Assert.Equal("history", Type((await second.ReceiveAsync())!.Value));
        await other.SendAsync(new { type = "get_history", conversationId });
        Assert.Equal("not_found", (await other.ReceiveAsync())!.Value.GetProperty("code").GetString());

        await first.SendAsync(new { type = "chat", conversationId, message = "again", options = new { temperature = 0 } });
        var mirrored = await second.ReceiveUntilAsync("stream_end");
        Assert.Equal(Expect.ChatReply, string.Concat(mirrored.Where(f => Type(f) == "stream_chunk").Select(f => f.GetProperty("content").GetString())));
        Assert.Equal(Expect.ChatReply, (await first.ReceiveUntilAsync("stream_end"))[^1].GetProperty("fullResponse").GetString());

        await other.SendAsync(new { type = "ping" });
        Assert.Equal("pong", Type((await other.ReceiveAsync())!.Value)); // nothing of the reply reached the stranger
    }
}

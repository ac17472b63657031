using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Server.Tests.Conversations;
using Sutazai.Server.Tests.Infrastructure;
using Expect = Sutazai.TestSupport.DeterministicModelSpec.DefaultExpectations;

namespace Sutazai.Server.Tests.Chat;

/// <summary>A test-side /ws/chat client: JSON text frames both ways.</summary>
public sealed class ChatClient(WebSocket socket) : IAsyncDisposable
{
    public WebSocket Socket { get; } = socket;

    /// <param name="configure">Sets more handshake headers (Origin, Cookie, Authorization).</param>
    /// <param name="authority">The host (and port) the handshake is sent to.</param>
    public static async Task<ChatClient> ConnectAsync(TestApp app, string? accessToken, string path = "/ws/chat", Action<HttpRequest>? configure = null, string authority = "localhost")
    {
        var client = app.Server.CreateWebSocketClient();
        client.ConfigureRequest = configure;
        var uri = new Uri($"ws://{authority}{path}" + (accessToken is null ? "" : "?access_token=" + Uri.EscapeDataString(accessToken)));
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
        // Closes, or answers the server's close (as browsers do), so the server sees the close handshake complete.
        if (Socket.State is WebSocketState.Open or WebSocketState.CloseReceived) await Socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
        Socket.Dispose();
    }
}

public sealed class ChatSocketTests(ConversationAppFixture fixture) : IClassFixture<ConversationAppFixture>
{
    private TestApp App => fixture.App;

    private async Task<Tokens> UserAsync() => (await AccountAsync(App)).Tokens;

    private static async Task<(TestUser User, Tokens Tokens)> AccountAsync(TestApp app)
    {
        using var anon = app.Client();
        return await Accounts.RegisterAndLoginAsync(anon);
    }

    private static string Type(JsonElement frame) => frame.GetProperty("type").GetString()!;

    /// <summary>The frames a refused credential ends a socket with: one unauthorized error, then close 1008.</summary>
    private static async Task AssertClosedAsUnauthorizedAsync(ChatClient socket, string reason)
    {
        var error = (await socket.ReceiveAsync())!.Value;
        Assert.Equal("error", Type(error));
        Assert.Equal("unauthorized", error.GetProperty("code").GetString());
        Assert.Equal(reason, error.GetProperty("message").GetString());
        Assert.Null(await socket.ReceiveAsync());
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, socket.Socket.CloseStatus);
    }

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
        var own = await first.ReceiveUntilAsync("stream_end");
        Assert.Equal(Expect.ChatReply, own[^1].GetProperty("fullResponse").GetString());
        // Each socket gets the reply once: the sender through the same subscription as the other socket, no echo.
        Assert.Equal(["message_received", "stream_start", "stream_end"], own.Select(Type).Where(t => t != "stream_chunk").ToArray());
        Assert.Equal(["message_received", "stream_start", "stream_end"], mirrored.Select(Type).Where(t => t != "stream_chunk").ToArray());
        foreach (var socket in new[] { first, second })
        {
            await socket.SendAsync(new { type = "ping" });
            Assert.Equal("pong", Type((await socket.ReceiveAsync())!.Value));
        }

        await other.SendAsync(new { type = "ping" });
        Assert.Equal("pong", Type((await other.ReceiveAsync())!.Value)); // nothing of the reply reached the stranger
    }

    [Theory]
    [InlineData("http://evil.example")]
    [InlineData("null")]
    [InlineData("https://localhost")]
    [InlineData("http://localhost:8080")]
    [InlineData("http://localhost.evil.example")]
    public async Task Handshake_FromAForeignOrigin_Is403BeforeTheUpgrade_WithTheCookieOrAToken(string origin)
    {
        var (user, tokens) = await AccountAsync(App);
        var cookie = await UiCookies.ForAsync(App, user.Id);

        var byCookie = await SocketHandshakes.SendAsync(App, "/ws/chat", origin, cookie: cookie);
        Assert.Equal(StatusCodes.Status403Forbidden, byCookie.Status);
        Assert.False(byCookie.Accepted);
        Assert.Equal("application/problem+json", byCookie.ContentType);
        var problem = JsonDocument.Parse(byCookie.Body).RootElement;
        Assert.Equal(403, problem.GetProperty("status").GetInt32());
        Assert.Equal($"A page from '{origin}' may not open /ws/chat: only pages of this server (http://localhost) or of an origin listed in " +
            "Sutazai:Http:CorsOrigins may. Clients that are not browsers send no Origin header and authenticate with a bearer token.",
            problem.GetProperty("detail").GetString());

        var byToken = await SocketHandshakes.SendAsync(App, "/ws/chat", origin, bearer: tokens.AccessToken);
        Assert.Equal(StatusCodes.Status403Forbidden, byToken.Status);
        Assert.False(byToken.Accepted);

        // And a real client gets no socket, whether the token is in the query or the cookie is sent.
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => ChatClient.ConnectAsync(App, tokens.AccessToken, configure: r => r.Headers.Origin = origin));
        Assert.Equal("Incomplete handshake, status code: 403", refused.Message);
        refused = await Assert.ThrowsAsync<InvalidOperationException>(() => ChatClient.ConnectAsync(App, null, configure: r =>
        {
            r.Headers.Origin = origin;
            r.Headers.Cookie = cookie;
        }));
        Assert.Equal("Incomplete handshake, status code: 403", refused.Message);
    }

    [Fact]
    public async Task Handshake_FromTheServersOwnOrigin_OrWithoutOrigin_IsAccepted()
    {
        var (user, tokens) = await AccountAsync(App);
        var cookie = await UiCookies.ForAsync(App, user.Id);

        // Sutazai:PublicUrl is http://localhost in tests.
        await using (var ownPage = await ChatClient.ConnectAsync(App, null, configure: r =>
        {
            r.Headers.Origin = "http://localhost";
            r.Headers.Cookie = cookie;
        }))
        {
            Assert.True((await ownPage.ReadConnectionAsync()).GetProperty("authenticated").GetBoolean());
            await ownPage.SendAsync(new { type = "get_history", conversationId = Guid.NewGuid() });
            Assert.Equal("not_found", (await ownPage.ReceiveAsync())!.Value.GetProperty("code").GetString());
        }

        // The origin the request was sent to counts as the server's own (a proxy host that is not the public URL).
        await using (var requestOrigin = await ChatClient.ConnectAsync(App, tokens.AccessToken, configure: r => r.Headers.Origin = "http://sutazai.internal:8443", authority: "sutazai.internal:8443"))
            Assert.True((await requestOrigin.ReadConnectionAsync()).GetProperty("authenticated").GetBoolean());

        // Not a browser: no Origin, a bearer token in the header or the query.
        await using (var cli = await ChatClient.ConnectAsync(App, null, configure: r => r.Headers.Authorization = "Bearer " + tokens.AccessToken))
            Assert.True((await cli.ReadConnectionAsync()).GetProperty("authenticated").GetBoolean());
        await using var sdk = await ChatClient.ConnectAsync(App, tokens.AccessToken);
        Assert.True((await sdk.ReadConnectionAsync()).GetProperty("authenticated").GetBoolean());
    }

    [Fact]
    public async Task Handshake_FromAConfiguredCorsOrigin_IsAccepted_AndAWildcardOpensNothing()
    {
        await using var app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?> { ["Sutazai:Http:CorsOrigins"] = "https://app.example, *" });
        var (_, tokens) = await AccountAsync(app);

        await using (var listed = await ChatClient.ConnectAsync(app, tokens.AccessToken, configure: r => r.Headers.Origin = "https://app.example"))
            Assert.True((await listed.ReadConnectionAsync()).GetProperty("authenticated").GetBoolean());
        var other = await SocketHandshakes.SendAsync(app, "/ws/chat", "https://other.example", bearer: tokens.AccessToken);
        Assert.Equal(StatusCodes.Status403Forbidden, other.Status);
        Assert.False(other.Accepted);
    }

    [Fact]
    public async Task DeactivatingTheUser_ClosesTheirOpenSocketWith1008_OnTheNextChatFrame_AndNothingIsGenerated()
    {
        var (user, tokens) = await AccountAsync(App);
        await using var chat = await ChatClient.ConnectAsync(App, tokens.AccessToken);
        await chat.ReadConnectionAsync();
        await chat.SendAsync(new { type = "get_history", conversationId = Guid.NewGuid() });
        Assert.Equal("not_found", (await chat.ReceiveAsync())!.Value.GetProperty("code").GetString());

        using var admin = App.Client(fixture.AdminTokens.AccessToken);
        var deactivated = await admin.PatchAsJsonAsync($"/api/v1/admin/users/{user.Id}", new { isActive = false });
        Assert.Equal(HttpStatusCode.OK, deactivated.StatusCode);

        await chat.SendAsync(new { type = "chat", message = "Still there?", options = new { temperature = 0 } });
        await AssertClosedAsUnauthorizedAsync(chat, "The account is deactivated.");
        Assert.Equal(0, await App.WithDbAsync(db => db.Conversations.CountAsync(c => c.UserId == user.Id)));
        Assert.Equal(0, await App.WithDbAsync(db => db.Messages.CountAsync(m => db.Conversations.Any(c => c.Id == m.ConversationId && c.UserId == user.Id))));
    }

    [Fact]
    public async Task ChangingThePassword_ClosesTheUsersCookieSocketWith1008_OnItsNextFrame()
    {
        var (user, tokens) = await AccountAsync(App);
        var cookie = await UiCookies.ForAsync(App, user.Id);
        await using var chat = await ChatClient.ConnectAsync(App, null, configure: r => r.Headers.Cookie = cookie);
        Assert.True((await chat.ReadConnectionAsync()).GetProperty("authenticated").GetBoolean());

        using var client = App.Client(tokens.AccessToken);
        var changed = await client.PostAsJsonAsync("/api/v1/users/me/password", new { currentPassword = Accounts.Password, newPassword = "Another#Kettle7!Walk" });
        Assert.Equal(HttpStatusCode.NoContent, changed.StatusCode);

        await chat.SendAsync(new { type = "get_history", conversationId = Guid.NewGuid() });
        await AssertClosedAsUnauthorizedAsync(chat, "The session was revoked.");
    }

    [Fact]
    public async Task TheCookieExpiring_ClosesItsSocketWith1008_OnTheNextFrame()
    {
        var clock = new ShiftedClock();
        await using var app = TestApp.Create(DbProvider.Sqlite, services: s => s.AddSingleton<TimeProvider>(clock));
        var (user, _) = await AccountAsync(app);
        var cookie = await UiCookies.ForAsync(app, user.Id);
        await using var chat = await ChatClient.ConnectAsync(app, null, configure: r => r.Headers.Cookie = cookie);
        Assert.True((await chat.ReadConnectionAsync()).GetProperty("authenticated").GetBoolean());

        clock.Shift = TimeSpan.FromDays(7) + TimeSpan.FromMinutes(1); // past Sutazai:Auth:CookieLifetime
        await chat.SendAsync(new { type = "get_history", conversationId = Guid.NewGuid() });
        await AssertClosedAsUnauthorizedAsync(chat, "The sign-in has expired.");
    }

    [Fact]
    public async Task ThePeriodicRecheck_ClosesIdleSockets_AfterLogoutEverywhere_AndAfterTheirApiKeyIsRevoked()
    {
        await using var app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?> { ["Sutazai:WebSockets:CredentialRecheckSeconds"] = "1" });
        var (user, tokens) = await AccountAsync(app);
        using var client = app.Client(tokens.AccessToken);
        var created = await client.PostAsJsonAsync("/api/v1/keys", new { name = "socket" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var key = await created.ReadJsonAsync();

        await using var byQuery = await ChatClient.ConnectAsync(app, tokens.AccessToken);
        Assert.True((await byQuery.ReadConnectionAsync()).GetProperty("authenticated").GetBoolean());
        await using var byAuthFrame = await ChatClient.ConnectAsync(app, null);
        await byAuthFrame.ReadConnectionAsync();
        await byAuthFrame.SendAsync(new { type = "auth", token = tokens.AccessToken });
        Assert.Equal("authenticated", Type((await byAuthFrame.ReceiveAsync())!.Value));
        await using var byApiKey = await ChatClient.ConnectAsync(app, key.GetProperty("key").GetString());
        Assert.True((await byApiKey.ReadConnectionAsync()).GetProperty("authenticated").GetBoolean());

        Assert.Equal(HttpStatusCode.NoContent, (await client.PostAsync("/api/v1/auth/logout/all", null)).StatusCode);
        // No frame is sent: the sockets are closed by the periodic check alone.
        await AssertClosedAsUnauthorizedAsync(byQuery, "The session was revoked.");
        await AssertClosedAsUnauthorizedAsync(byAuthFrame, "The session was revoked.");

        using var anon = app.Client();
        using var again = app.Client((await Accounts.LoginAsync(anon, user.Username)).AccessToken);
        Assert.Equal(HttpStatusCode.NoContent, (await again.DeleteAsync($"/api/v1/keys/{key.GetProperty("id").GetGuid()}")).StatusCode);
        await AssertClosedAsUnauthorizedAsync(byApiKey, "The API key was revoked.");
    }
}

/// <summary>The system clock moved forward by <see cref="Shift"/>.</summary>
internal sealed class ShiftedClock : TimeProvider
{
    public TimeSpan Shift { get; set; }

    public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + Shift;
}

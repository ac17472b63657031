using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sutazai.Data.Entities;
using Sutazai.Inference.Gguf;
using Sutazai.Server.Tests.Infrastructure;
using Expect = Sutazai.TestSupport.DeterministicModelSpec.DefaultExpectations;

namespace Sutazai.Server.Tests.Conversations;

/// <summary>
/// Two tiny models: the standard one (every chat reply is "Hello! How can I help you?") and a looping one whose reply
/// continues with " la" forever, for stopping and disconnecting mid-reply.
/// </summary>
public abstract class ConversationAppFixtureBase(DbProvider provider) : IAsyncLifetime
{
    public const string Model = "tiny-deterministic";
    public const string Looping = "tiny-looping";
    public const int MaxImportMessages = 8;

    public TestApp App { get; private set; } = null!;

    public Tokens AdminTokens { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        App = TestApp.Create(provider, new Dictionary<string, string?>
        {
            // The looping model is made slow (8 inert layers) and long (16,384 tokens of context), so stop and disconnect
            // tests act seconds before its reply could end.
            ["Sutazai:Inference:LlamaCpp:ContextSize"] = "16384",
            ["Sutazai:Inference:LlamaCpp:KeepAlive"] = "-00:00:01",
            ["Sutazai:Inference:Ollama:AutoDetect"] = "false",
            ["Sutazai:Inference:DefaultModel"] = Model,
            // Low, so the size bound can be crossed with a handful of messages; the round-trip export holds 5.
            ["Sutazai:Conversations:MaxImportMessages"] = MaxImportMessages.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        ModelAppFixture.WriteModel(App.DataDir, Model);
        var spec = DeterministicModelSpec.Default();
        var successors = new Dictionary<string, string>(spec.Successors, StringComparer.Ordinal) { ["?"] = "▁la" };
        TinyModels.WriteDeterministic(Path.Combine(App.DataDir, "models", Looping + ".gguf"), spec with { Successors = successors, ContextLength = 16384, BlockCount = 8 });
        using var client = App.Client();
        var admin = await Accounts.RegisterAsync(client); // the admin; test users below are plain users
        AdminTokens = await Accounts.LoginAsync(client, admin.Username);
    }

    public async Task DisposeAsync() => await App.DisposeAsync();
}

/// <summary>The conversation app on SQLite (also used by the /ws/chat tests).</summary>
public sealed class ConversationAppFixture() : ConversationAppFixtureBase(DbProvider.Sqlite);

public sealed class PostgresConversationAppFixture() : ConversationAppFixtureBase(DbProvider.Postgres);

public sealed class SqliteConversationApiTests(ConversationAppFixture fixture) : ConversationApiTests(fixture), IClassFixture<ConversationAppFixture>;

public sealed class PostgresConversationApiTests(PostgresConversationAppFixture fixture) : ConversationApiTests(fixture), IClassFixture<PostgresConversationAppFixture>;

public abstract class ConversationApiTests(ConversationAppFixtureBase fixture)
{
    private TestApp App => fixture.App;

    private static readonly object Greedy = new { temperature = 0 };

    private async Task<HttpClient> UserAsync()
    {
        using var anon = App.Client();
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        return App.Client(tokens.AccessToken);
    }

    private static async Task<Guid> CreateAsync(HttpClient client, object? body = null)
    {
        var response = await client.PostAsJsonAsync("/api/v1/conversations", body ?? new { });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.ReadJsonAsync()).GetProperty("id").GetGuid();
    }

    private static async Task<JsonElement> SendAsync(HttpClient client, Guid id, string content, object? extra = null)
    {
        var body = new Dictionary<string, object?> { ["content"] = content, ["options"] = Greedy };
        if (extra is not null) foreach (var p in extra.GetType().GetProperties()) body[p.Name] = p.GetValue(extra);
        var response = await client.PostAsJsonAsync($"/api/v1/conversations/{id}/messages", body);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return await response.ReadJsonAsync();
    }

    private async Task<ChatMessageEntity> WaitForStatusAsync(Guid messageId, Func<ChatMessageEntity, bool> done)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            var message = await App.WithDbAsync(db => db.Messages.AsNoTracking().SingleAsync(m => m.Id == messageId));
            if (done(message) || DateTime.UtcNow > deadline) return message;
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task PostMessage_StoresBothMessages_WithModelUsageAndTimings()
    {
        using var client = await UserAsync();
        var id = await CreateAsync(client);
        var exchange = await SendAsync(client, id, "Hi there");
        var user = exchange.GetProperty("userMessage");
        var assistant = exchange.GetProperty("assistantMessage");
        Assert.Equal("Hi there", user.GetProperty("content").GetString());
        Assert.Equal("user", user.GetProperty("role").GetString());
        Assert.Equal(Expect.ChatReply, assistant.GetProperty("content").GetString());
        Assert.Equal("complete", assistant.GetProperty("status").GetString());
        Assert.Equal(ConversationAppFixture.Model, assistant.GetProperty("model").GetString());
        Assert.Equal("stop", assistant.GetProperty("finishReason").GetString());
        Assert.Equal(Expect.ChatReplyTokens, assistant.GetProperty("usage").GetProperty("completionTokens").GetInt32());
        Assert.Equal(user.GetProperty("id").GetGuid(), assistant.GetProperty("parentId").GetGuid());

        var stored = await App.WithDbAsync(db => db.Messages.AsNoTracking().SingleAsync(m => m.Id == assistant.GetProperty("id").GetGuid()));
        Assert.Equal(Expect.ChatReply, stored.Content);
        Assert.Equal(Expect.ChatReplyTokens, stored.CompletionTokens);
        Assert.True(stored.TotalMs > 0);

        var messages = await (await client.GetAsync($"/api/v1/conversations/{id}/messages")).ReadJsonAsync();
        Assert.Equal(["user", "assistant"], messages.EnumerateArray().Select(m => m.GetProperty("role").GetString()!).ToArray());
        var conversation = await (await client.GetAsync($"/api/v1/conversations/{id}")).ReadJsonAsync();
        Assert.Equal(2, conversation.GetProperty("messageCount").GetInt32());
    }

    [Fact]
    public async Task Sse_StreamsStartTokensAndEnd_MatchingTheStoredMessage()
    {
        using var client = await UserAsync();
        var id = await CreateAsync(client);
        using var response = await client.SendAsync(Sse.Post($"/api/v1/conversations/{id}/messages", new { content = "Hello?", options = Greedy }), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await Sse.ReadAllAsync(response);
        Assert.Equal("message_start", events[0].Event);
        Assert.Equal("Hello?", events[0].Data.GetProperty("userMessage").GetProperty("content").GetString());
        var tokens = events.Where(e => e.Event == "token").Select(e => e.Data.GetProperty("content").GetString()).ToList();
        Assert.Equal(Expect.ChatReplyTokens, tokens.Count);
        Assert.Equal(Expect.ChatReply, string.Concat(tokens));
        var end = events[^1];
        Assert.Equal("message_end", end.Event);
        var messageId = end.Data.GetProperty("message").GetProperty("id").GetGuid();
        Assert.Equal(events[0].Data.GetProperty("assistantMessageId").GetGuid(), messageId);
        Assert.Equal(Expect.ChatReply, (await App.WithDbAsync(db => db.Messages.AsNoTracking().SingleAsync(m => m.Id == messageId))).Content);
    }

    [Fact]
    public async Task Title_IsGeneratedAfterTheFirstExchange_UnlessTheUserNamedIt()
    {
        using var client = await UserAsync();
        var id = await CreateAsync(client);
        await SendAsync(client, id, "Tell me about llamas");
        var deadline = DateTime.UtcNow.AddSeconds(15);
        string? title = null;
        while (DateTime.UtcNow < deadline)
        {
            title = (await (await client.GetAsync($"/api/v1/conversations/{id}")).ReadJsonAsync()).GetProperty("title").GetString();
            if (title != "New chat") break;
            await Task.Delay(50);
        }
        Assert.Equal(Expect.ChatReply, title);

        var named = await CreateAsync(client, new { title = "My own title" });
        await SendAsync(client, named, "Tell me about llamas");
        await Task.Delay(500);
        Assert.Equal("My own title", (await (await client.GetAsync($"/api/v1/conversations/{named}")).ReadJsonAsync()).GetProperty("title").GetString());
    }

    [Fact]
    public async Task EditAndRegenerate_CreateSiblingBranches_AndBranchesCanBeSwitched()
    {
        using var client = await UserAsync();
        var id = await CreateAsync(client);
        var first = await SendAsync(client, id, "First question");
        var firstUser = first.GetProperty("userMessage").GetProperty("id").GetGuid();
        var firstAssistant = first.GetProperty("assistantMessage").GetProperty("id").GetGuid();

        // Regenerating the reply adds a sibling answer to the same question.
        var regenerated = await client.PostAsJsonAsync($"/api/v1/conversations/{id}/messages/{firstAssistant}/regenerate", new { options = Greedy });
        Assert.Equal(HttpStatusCode.Created, regenerated.StatusCode);
        var second = (await regenerated.ReadJsonAsync()).GetProperty("assistantMessage");
        Assert.Equal(firstUser, second.GetProperty("parentId").GetGuid());
        Assert.Equal(2, second.GetProperty("siblingCount").GetInt32());
        Assert.Equal(1, second.GetProperty("siblingIndex").GetInt32());

        // Editing the question starts a sibling branch beside it.
        var edited = await SendAsync(client, id, "Edited question", new { editOf = firstUser });
        Assert.Equal(JsonValueKind.Null, edited.GetProperty("userMessage").GetProperty("parentId").ValueKind);
        Assert.Equal(2, edited.GetProperty("userMessage").GetProperty("siblingCount").GetInt32());
        var afterEdit = await client.PostAsJsonAsync($"/api/v1/conversations/{id}/messages", new { content = "Edited again", options = Greedy, editOf = edited.GetProperty("userMessage").GetProperty("id").GetGuid() });
        Assert.Equal(HttpStatusCode.Created, afterEdit.StatusCode);
        var branch = await (await client.GetAsync($"/api/v1/conversations/{id}/messages")).ReadJsonAsync();
        Assert.Equal(2, branch.GetArrayLength());
        Assert.Equal("Edited again", branch[0].GetProperty("content").GetString());

        var switched = await client.PostAsJsonAsync($"/api/v1/conversations/{id}/branch", new { messageId = firstUser });
        Assert.Equal(HttpStatusCode.OK, switched.StatusCode);
        var original = await (await client.GetAsync($"/api/v1/conversations/{id}/messages")).ReadJsonAsync();
        Assert.Equal("First question", original[0].GetProperty("content").GetString());
        Assert.True(original[0].GetProperty("siblingCount").GetInt32() >= 2);
        Assert.Equal(second.GetProperty("id").GetGuid(), original[1].GetProperty("id").GetGuid()); // newest answer shown
    }

    [Fact]
    public async Task Stop_KeepsThePartialReply_MarkedStopped()
    {
        using var client = await UserAsync();
        var id = await CreateAsync(client, new { model = ConversationAppFixture.Looping });
        using var response = await client.SendAsync(Sse.Post($"/api/v1/conversations/{id}/messages", new { content = "go", options = new { temperature = 0, maxTokens = 16000 } }), HttpCompletionOption.ResponseHeadersRead);
        Guid assistantId = default;
        var received = 0;
        await foreach (var e in Sse.ReadAsync(response))
        {
            if (e.Event == "message_start") assistantId = e.Data.GetProperty("assistantMessageId").GetGuid();
            if (e.Event == "token" && ++received == 12) break;
        }
        Assert.Equal(HttpStatusCode.Conflict, (await client.PostAsJsonAsync($"/api/v1/conversations/{id}/messages", new { content = "again" })).StatusCode);

        var stop = await client.PostAsync($"/api/v1/conversations/{id}/stop", null);
        Assert.Equal(HttpStatusCode.OK, stop.StatusCode);
        var stopped = await stop.ReadJsonAsync();
        Assert.Equal("stopped", stopped.GetProperty("status").GetString());
        Assert.StartsWith(Expect.ChatReply + " la la", stopped.GetProperty("content").GetString());

        var stored = await App.WithDbAsync(db => db.Messages.AsNoTracking().SingleAsync(m => m.Id == assistantId));
        Assert.Equal("stopped", stored.Status);
        Assert.Equal(stopped.GetProperty("content").GetString(), stored.Content);
        Assert.Equal(HttpStatusCode.Conflict, (await client.PostAsync($"/api/v1/conversations/{id}/stop", null)).StatusCode);
        // The conversation accepts a new message afterwards.
        Assert.Equal(HttpStatusCode.Created, (await client.PostAsJsonAsync($"/api/v1/conversations/{id}/messages", new { content = "next", model = ConversationAppFixture.Model, options = Greedy })).StatusCode);
    }

    [Fact]
    public async Task ClientDisconnect_ReplyStillCompletesAndIsStored()
    {
        using var client = await UserAsync();
        var id = await CreateAsync(client, new { model = ConversationAppFixture.Looping });
        var response = await client.SendAsync(Sse.Post($"/api/v1/conversations/{id}/messages", new { content = "go", options = new { temperature = 0, maxTokens = 60 } }), HttpCompletionOption.ResponseHeadersRead);
        Guid assistantId = default;
        await foreach (var e in Sse.ReadAsync(response))
        {
            if (e.Event == "message_start") assistantId = e.Data.GetProperty("assistantMessageId").GetGuid();
            if (e.Event == "token") break;
        }
        response.Dispose();

        var stored = await WaitForStatusAsync(assistantId, m => m.Status != "streaming");
        Assert.Equal("complete", stored.Status);
        Assert.Equal(60, stored.CompletionTokens);
        Assert.Equal("length", stored.FinishReason);
        Assert.Equal(ConversationAppFixture.Looping, stored.Model);
        Assert.StartsWith(Expect.ChatReply, stored.Content);
    }

    [Fact]
    public async Task UnknownModel_KeepsTheUserMessage_AndRecordsTheError()
    {
        using var client = await UserAsync();
        var id = await CreateAsync(client);
        var response = await client.PostAsJsonAsync($"/api/v1/conversations/{id}/messages", new { content = "Are you there?", model = "missing-model" });
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("missing-model", (await response.ReadJsonAsync()).GetProperty("detail").GetString());
        var messages = await (await client.GetAsync($"/api/v1/conversations/{id}/messages")).ReadJsonAsync();
        Assert.Equal("Are you there?", messages[0].GetProperty("content").GetString());
        Assert.Equal("error", messages[1].GetProperty("status").GetString());
        Assert.Contains("missing-model", messages[1].GetProperty("error").GetString());
    }

    [Fact]
    public async Task OtherUsersConversations_Are404Everywhere()
    {
        using var alice = await UserAsync();
        using var bob = await UserAsync();
        var id = await CreateAsync(alice, new { title = "Alice's secrets" });
        await SendAsync(alice, id, "my secret plan");

        Assert.Equal(HttpStatusCode.NotFound, (await bob.GetAsync($"/api/v1/conversations/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bob.GetAsync($"/api/v1/conversations/{id}/messages")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bob.PatchAsJsonAsync($"/api/v1/conversations/{id}", new { title = "mine" })).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bob.PostAsJsonAsync($"/api/v1/conversations/{id}/messages", new { content = "hi" })).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bob.PostAsync($"/api/v1/conversations/{id}/stop", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bob.GetAsync($"/api/v1/conversations/{id}/stream")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bob.GetAsync($"/api/v1/conversations/{id}/export?format=json")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bob.DeleteAsync($"/api/v1/conversations/{id}")).StatusCode);
        var bobSearch = await (await bob.GetAsync("/api/v1/conversations/search?q=secret")).ReadJsonAsync();
        Assert.Equal(0, bobSearch.GetArrayLength());
        Assert.Equal(0, (await (await bob.GetAsync("/api/v1/conversations")).ReadJsonAsync()).GetProperty("total").GetInt32());
        var notFound = await (await bob.GetAsync($"/api/v1/conversations/{id}")).Content.ReadAsStringAsync();
        Assert.DoesNotContain("secret", notFound, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(2, (await (await alice.GetAsync($"/api/v1/conversations/{id}/messages")).ReadJsonAsync()).GetArrayLength());
    }

    [Fact]
    public async Task ListRenamePinArchiveDelete()
    {
        using var client = await UserAsync();
        var a = await CreateAsync(client, new { title = "Alpha" });
        var b = await CreateAsync(client, new { title = "Beta" });
        var c = await CreateAsync(client, new { title = "Gamma" });
        Assert.Equal(HttpStatusCode.OK, (await client.PatchAsJsonAsync($"/api/v1/conversations/{a}", new { pinned = true, title = "Alpha pinned" })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.PatchAsJsonAsync($"/api/v1/conversations/{b}", new { archived = true })).StatusCode);
        var list = await (await client.GetAsync("/api/v1/conversations")).ReadJsonAsync();
        Assert.Equal(["Alpha pinned", "Gamma"], list.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("title").GetString()!).ToArray());
        var archived = await (await client.GetAsync("/api/v1/conversations?archived=true")).ReadJsonAsync();
        Assert.Equal("Beta", Assert.Single(archived.GetProperty("items").EnumerateArray()).GetProperty("title").GetString());

        var bad = await client.PatchAsJsonAsync($"/api/v1/conversations/{a}", new { title = new string('x', 201) });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, bad.StatusCode);
        Assert.True((await bad.ReadJsonAsync()).GetProperty("errors").TryGetProperty("title", out _));

        await SendAsync(client, c, "hello");
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/api/v1/conversations/{c}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/api/v1/conversations/{c}")).StatusCode);
        Assert.Equal(0, await App.WithDbAsync(db => db.Messages.CountAsync(m => m.ConversationId == c)));
    }

    [Fact]
    public async Task Search_FindsMyMessagesAndTitles()
    {
        using var client = await UserAsync();
        var id = await CreateAsync(client, new { title = "Quantum notes" });
        await SendAsync(client, id, "What about the zebra-crossing problem?");
        var hits = await (await client.GetAsync("/api/v1/conversations/search?q=ZEBRA")).ReadJsonAsync();
        var hit = Assert.Single(hits.EnumerateArray());
        Assert.Equal(id, hit.GetProperty("conversationId").GetGuid());
        Assert.Contains("zebra-crossing", hit.GetProperty("snippet").GetString());
        var titles = await (await client.GetAsync("/api/v1/conversations/search?q=quantum")).ReadJsonAsync();
        Assert.Equal(id, Assert.Single(titles.EnumerateArray()).GetProperty("conversationId").GetGuid());
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await client.GetAsync("/api/v1/conversations/search?q=")).StatusCode);
    }

    [Fact]
    public async Task ExportAndImport_RoundTripTheTree()
    {
        using var client = await UserAsync();
        var id = await CreateAsync(client, new { title = "Exported chat", systemPrompt = "Be nice." });
        var first = await SendAsync(client, id, "Question one");
        await client.PostAsJsonAsync($"/api/v1/conversations/{id}/messages/{first.GetProperty("assistantMessage").GetProperty("id").GetGuid()}/regenerate", new { options = Greedy });
        await SendAsync(client, id, "Question two");

        var markdown = await client.GetAsync($"/api/v1/conversations/{id}/export?format=markdown");
        Assert.Equal("text/markdown", markdown.Content.Headers.ContentType?.MediaType);
        var md = await markdown.Content.ReadAsStringAsync();
        Assert.StartsWith("# Exported chat", md);
        Assert.Contains("## User\n\nQuestion two", md);
        Assert.Contains(Expect.ChatReply, md);

        var json = await (await client.GetAsync($"/api/v1/conversations/{id}/export?format=json")).ReadJsonAsync();
        Assert.Equal(5, json.GetProperty("messages").GetArrayLength()); // Q1, A1, A1 regenerated, Q2, A2
        var imported = await client.PostAsync("/api/v1/conversations/import", new StringContent(json.GetRawText(), System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Created, imported.StatusCode);
        var newId = (await imported.ReadJsonAsync()).GetProperty("id").GetGuid();
        Assert.NotEqual(id, newId);
        var originalBranch = await (await client.GetAsync($"/api/v1/conversations/{id}/messages")).ReadJsonAsync();
        var importedBranch = await (await client.GetAsync($"/api/v1/conversations/{newId}/messages")).ReadJsonAsync();
        Assert.Equal(originalBranch.EnumerateArray().Select(m => m.GetProperty("content").GetString()), importedBranch.EnumerateArray().Select(m => m.GetProperty("content").GetString()));
        Assert.Equal(5, await App.WithDbAsync(db => db.Messages.CountAsync(m => m.ConversationId == newId)));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await client.GetAsync($"/api/v1/conversations/{id}/export?format=pdf")).StatusCode);
        var broken = await client.PostAsJsonAsync("/api/v1/conversations/import", new { format = "other", title = "", messages = Array.Empty<object>() });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, broken.StatusCode);
    }

    [Fact]
    public async Task LongHistory_IsTrimmedFromTheOldestTurn_InsteadOfFailing()
    {
        using var client = await UserAsync();
        var id = await CreateAsync(client);
        // Each message is ~800 tokens for this tiny vocabulary (one byte token per letter); the model holds 2048.
        var big = new string('q', 800);
        for (var i = 0; i < 3; i++) await SendAsync(client, id, big + i);
        var last = await SendAsync(client, id, "short");
        Assert.Equal(Expect.ChatReply, last.GetProperty("assistantMessage").GetProperty("content").GetString());
        Assert.True(last.GetProperty("assistantMessage").GetProperty("usage").GetProperty("promptTokens").GetInt32() < 2048);
    }

    [Fact]
    public async Task KnowledgeGroundedReply_StoresNumberedCitations_AndSendsTheSourcesToTheModel()
    {
        using var client = await UserAsync();
        var collection = await (await client.PostAsJsonAsync("/api/v1/collections", new { name = "Farm" })).ReadJsonAsync();
        var collectionId = collection.GetProperty("id").GetGuid();
        var form = new MultipartFormDataContent();
        form.Add(new ByteArrayContent(System.Text.Encoding.UTF8.GetBytes("# Alpacas\n\nAlpacas are sheared every spring and their fleece is called fiber.")), "file", "alpacas.md");
        form.Add(new StringContent(collectionId.ToString()), "collectionId");
        var docId = (await (await client.PostAsync("/api/v1/documents", form)).ReadJsonAsync()).GetProperty("documents")[0].GetProperty("id").GetGuid();
        Assert.Equal("indexed", (await Documents.WaitIndexedAsync(client, docId)).GetProperty("status").GetString());

        var id = await CreateAsync(client);
        var plain = await SendAsync(client, id, "When are alpacas sheared?");
        Assert.Equal(0, plain.GetProperty("assistantMessage").GetProperty("citations").GetArrayLength());
        var grounded = await SendAsync(client, id, "When are alpacas sheared?", new { collectionIds = new[] { collectionId } });
        var assistant = grounded.GetProperty("assistantMessage");
        var citation = Assert.Single(assistant.GetProperty("citations").EnumerateArray());
        Assert.Equal(1, citation.GetProperty("index").GetInt32());
        Assert.Equal(docId, citation.GetProperty("documentId").GetGuid());
        Assert.Contains("sheared every spring", citation.GetProperty("text").GetString());
        Assert.Equal("Alpacas", citation.GetProperty("heading").GetString());
        Assert.Equal(JsonValueKind.Null, citation.GetProperty("sharedBy").ValueKind); // my own document
        // The sources were part of the prompt the model read.
        Assert.True(assistant.GetProperty("usage").GetProperty("promptTokens").GetInt32() > plain.GetProperty("assistantMessage").GetProperty("usage").GetProperty("promptTokens").GetInt32() + 50);
        var stored = await (await client.GetAsync($"/api/v1/conversations/{id}/messages")).ReadJsonAsync();
        Assert.Equal(docId, stored[stored.GetArrayLength() - 1].GetProperty("citations")[0].GetProperty("documentId").GetGuid());

        using var stranger = await UserAsync();
        var other = await CreateAsync(stranger);
        var denied = await stranger.PostAsJsonAsync($"/api/v1/conversations/{other}/messages", new { content = "x", collectionIds = new[] { collectionId } });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, denied.StatusCode);
        Assert.True((await denied.ReadJsonAsync()).GetProperty("errors").TryGetProperty("collectionIds", out _));
    }

    [Fact]
    public async Task DefaultSystemPrompt_AppliesToNewConversations()
    {
        using var client = await UserAsync();
        Assert.Equal(HttpStatusCode.OK, (await client.PatchAsJsonAsync("/api/v1/users/me", new { defaultSystemPrompt = "You are terse." })).StatusCode);
        var created = await (await client.PostAsJsonAsync("/api/v1/conversations", new { })).ReadJsonAsync();
        Assert.Equal("You are terse.", created.GetProperty("systemPrompt").GetString());
        var explicitPrompt = await (await client.PostAsJsonAsync("/api/v1/conversations", new { systemPrompt = "Other." })).ReadJsonAsync();
        Assert.Equal("Other.", explicitPrompt.GetProperty("systemPrompt").GetString());
    }

    [Fact]
    public async Task InvalidInput_Returns422()
    {
        using var client = await UserAsync();
        var id = await CreateAsync(client);
        var empty = await client.PostAsJsonAsync($"/api/v1/conversations/{id}/messages", new { content = "" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, empty.StatusCode);
        Assert.True((await empty.ReadJsonAsync()).GetProperty("errors").TryGetProperty("content", out _));
        var badOptions = await client.PostAsJsonAsync($"/api/v1/conversations/{id}/messages", new { content = "x", options = new { temperature = 9 } });
        Assert.True((await badOptions.ReadJsonAsync()).GetProperty("errors").TryGetProperty("options.temperature", out _));
        var badParent = await client.PostAsJsonAsync($"/api/v1/conversations/{id}/messages", new { content = "x", parentId = Guid.NewGuid() });
        Assert.True((await badParent.ReadJsonAsync()).GetProperty("errors").TryGetProperty("parentId", out _));
        Assert.Equal(0, await App.WithDbAsync(db => db.Messages.CountAsync(m => m.ConversationId == id)));
    }
    private static object Exported(Guid id, Guid? parentId, string role = "user", bool active = false, int minute = 0) =>
        new { id, parentId, role, content = $"{role} {id:N}", model = (string?)null, status = "complete", createdAt = new DateTime(2025, 1, 1, 12, minute, 0, DateTimeKind.Utc), active };

    private static Task<HttpResponseMessage> ImportAsync(HttpClient client, params object[] messages) =>
        client.PostAsJsonAsync("/api/v1/conversations/import", new { format = "sutazai.conversation.v1", title = "Imported", createdAt = DateTime.UtcNow, messages });

    private async Task<(Guid UserId, string AccessToken)> RegisterAsync()
    {
        using var anon = App.Client();
        var (user, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        return (user.Id, tokens.AccessToken);
    }

    /// <summary>422 whose errors are exactly <paramref name="fields"/>, and the user still has no conversation or message.</summary>
    private async Task AssertRefusedAsync(HttpResponseMessage response, Guid userId, params string[] fields)
    {
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var problem = await response.ReadJsonAsync();
        Assert.Equal(422, problem.GetProperty("status").GetInt32());
        Assert.Equal(fields.Order(StringComparer.Ordinal), problem.GetProperty("errors").EnumerateObject().Select(e => e.Name).Order(StringComparer.Ordinal));
        Assert.Equal(0, await App.WithDbAsync(db => db.Conversations.CountAsync(c => c.UserId == userId)));
        Assert.Equal(0, await App.WithDbAsync(db => db.Messages.CountAsync(m => db.Conversations.Any(c => c.Id == m.ConversationId && c.UserId == userId))));
    }

    [Fact]
    public async Task Import_MessageThatIsItsOwnParent_Is422NamingIt_AndStoresNothing()
    {
        var (userId, token) = await RegisterAsync();
        using var client = App.Client(token);
        var self = Guid.NewGuid();
        var response = await ImportAsync(client, Exported(self, self));
        await AssertRefusedAsync(response, userId, "messages[0].parentId");
        Assert.Equal("A message cannot be its own parent.", (await response.ReadJsonAsync()).GetProperty("errors").GetProperty("messages[0].parentId")[0].GetString());
    }

    [Fact]
    public async Task Import_TwoMessageCycle_Is422NamingBothMessagesOfTheCycle_AndStoresNothing()
    {
        var (userId, token) = await RegisterAsync();
        using var client = App.Client(token);
        Guid root = Guid.NewGuid(), a = Guid.NewGuid(), b = Guid.NewGuid(), underCycle = Guid.NewGuid();
        // messages[0] is a sound root; [1] and [2] name each other; [3] hangs below the cycle but is not part of it.
        var response = await ImportAsync(client, Exported(root, null), Exported(a, b, "assistant"), Exported(b, a), Exported(underCycle, a, "assistant"));
        await AssertRefusedAsync(response, userId, "messages[1].parentId", "messages[2].parentId");
        var error = (await response.ReadJsonAsync()).GetProperty("errors").GetProperty("messages[1].parentId")[0].GetString();
        Assert.Contains("messages[1] → messages[2] → messages[1]", error);
    }

    [Fact]
    public async Task Import_UnknownParent_Is422NamingTheMessage_AndStoresNothing()
    {
        var (userId, token) = await RegisterAsync();
        using var client = App.Client(token);
        var root = Guid.NewGuid();
        var response = await ImportAsync(client, Exported(root, null), Exported(Guid.NewGuid(), root, "assistant"), Exported(Guid.NewGuid(), Guid.NewGuid()));
        await AssertRefusedAsync(response, userId, "messages[2].parentId");
        Assert.Equal("parentId must name another message of the export.", (await response.ReadJsonAsync()).GetProperty("errors").GetProperty("messages[2].parentId")[0].GetString());
    }

    [Fact]
    public async Task Import_OverMaxImportMessages_Is422NamingMessages_AndStoresNothing()
    {
        var (userId, token) = await RegisterAsync();
        using var client = App.Client(token);
        var chain = new List<object>();
        Guid? parent = null;
        for (var i = 0; i <= ConversationAppFixture.MaxImportMessages; i++)
        {
            var id = Guid.NewGuid();
            chain.Add(Exported(id, parent, i % 2 == 0 ? "user" : "assistant", minute: i));
            parent = id;
        }
        var response = await ImportAsync(client, [.. chain]);
        await AssertRefusedAsync(response, userId, "messages");
        Assert.Equal($"An import holds at most {ConversationAppFixture.MaxImportMessages} messages (Sutazai:Conversations:MaxImportMessages); this one has {ConversationAppFixture.MaxImportMessages + 1}.",
            (await response.ReadJsonAsync()).GetProperty("errors").GetProperty("messages")[0].GetString());

        // At the bound it is accepted.
        var atLimit = await ImportAsync(client, [.. chain.Take(ConversationAppFixture.MaxImportMessages)]);
        Assert.Equal(HttpStatusCode.Created, atLimit.StatusCode);
        Assert.Equal(ConversationAppFixture.MaxImportMessages, (await atLimit.ReadJsonAsync()).GetProperty("messageCount").GetInt32());
    }

    [Fact]
    public async Task Import_BranchedTree_KeepsTheActiveBranchAndSiblings_AndBranchesSwitch()
    {
        var (userId, token) = await RegisterAsync();
        using var client = App.Client(token);
        // Two top-level questions (what editing the first message makes), the first answered twice.
        Guid q1 = Guid.NewGuid(), a1 = Guid.NewGuid(), a1b = Guid.NewGuid(), q1edit = Guid.NewGuid(), a2 = Guid.NewGuid();
        var response = await ImportAsync(client,
            Exported(q1, null, minute: 0), Exported(a1, q1, "assistant", minute: 1), Exported(a1b, q1, "assistant", minute: 2),
            Exported(q1edit, null, active: true, minute: 3), Exported(a2, q1edit, "assistant", active: true, minute: 4));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var id = (await response.ReadJsonAsync()).GetProperty("id").GetGuid();
        Assert.Equal(5, await App.WithDbAsync(db => db.Messages.CountAsync(m => m.ConversationId == id)));
        Assert.Equal(1, await App.WithDbAsync(db => db.Conversations.CountAsync(c => c.UserId == userId)));

        var active = await (await client.GetAsync($"/api/v1/conversations/{id}/messages")).ReadJsonAsync();
        Assert.Equal([$"user {q1edit:N}", $"assistant {a2:N}"], active.EnumerateArray().Select(m => m.GetProperty("content").GetString()!).ToArray());
        Assert.Equal(2, active[0].GetProperty("siblingCount").GetInt32());
        Assert.Equal(1, active[0].GetProperty("siblingIndex").GetInt32());

        // ‹ 1/2 ›: the first question, followed down to its newest answer.
        var firstQuestion = active[0].GetProperty("siblingIds")[0].GetGuid();
        var switched = await client.PostAsJsonAsync($"/api/v1/conversations/{id}/branch", new { messageId = firstQuestion });
        Assert.Equal(HttpStatusCode.OK, switched.StatusCode);
        var branch = await switched.ReadJsonAsync();
        Assert.Equal([$"user {q1:N}", $"assistant {a1b:N}"], branch.EnumerateArray().Select(m => m.GetProperty("content").GetString()!).ToArray());
        Assert.Equal(2, branch[1].GetProperty("siblingCount").GetInt32());
        Assert.Equal(1, branch[1].GetProperty("siblingIndex").GetInt32());
        var stored = await App.WithDbAsync(db => db.Conversations.AsNoTracking().SingleAsync(c => c.Id == id));
        Assert.Equal(branch[1].GetProperty("id").GetGuid(), stored.ActiveLeafId);
    }

    [Fact]
    public async Task CorruptParentCycleInTheDatabase_StillAnswersMessagesAndBranchSwitch()
    {
        using var client = await UserAsync();
        var id = await CreateAsync(client);
        var exchange = await SendAsync(client, id, "Loop me");
        var user = exchange.GetProperty("userMessage").GetProperty("id").GetGuid();
        var assistant = exchange.GetProperty("assistantMessage").GetProperty("id").GetGuid();
        // A row no import can write any more: the question's parent is its own answer.
        await App.WithDbAsync(db => db.Messages.Where(m => m.Id == user).ExecuteUpdateAsync(u => u.SetProperty(m => m.ParentId, assistant)));

        var switched = await client.PostAsJsonAsync($"/api/v1/conversations/{id}/branch", new { messageId = user }).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(HttpStatusCode.OK, switched.StatusCode);
        var branch = await switched.ReadJsonAsync();
        Assert.Equal([user, assistant], branch.EnumerateArray().Select(m => m.GetProperty("id").GetGuid()).ToArray());
        Assert.Equal(assistant, (await App.WithDbAsync(db => db.Conversations.AsNoTracking().SingleAsync(c => c.Id == id))).ActiveLeafId);
        var messages = await (await client.GetAsync($"/api/v1/conversations/{id}/messages").WaitAsync(TimeSpan.FromSeconds(60))).ReadJsonAsync();
        Assert.Equal([user, assistant], messages.EnumerateArray().Select(m => m.GetProperty("id").GetGuid()).ToArray());
    }
}

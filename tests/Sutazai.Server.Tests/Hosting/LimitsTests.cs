using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Inference;
using Sutazai.Server.Tests.Chat;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Hosting;

/// <summary>
/// A model whose every generation sends one token and then waits until the test releases it, so a test holds as many
/// generations open as it needs for as long as it needs — nothing here depends on how fast the machine is.
/// </summary>
public sealed class HeldModels : IModelProvider
{
    public const string ModelId = "held-model";
    public const string FirstToken = "held";

    private TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _started;

    public string Name => "held";

    /// <summary>Generations begun so far.</summary>
    public int Started => Volatile.Read(ref _started);

    /// <summary>Lets every generation waiting now finish; later ones wait again.</summary>
    public void ReleaseAll() => Interlocked.Exchange(ref _release, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>
    /// Lets every generation finish, those waiting now and every later one: for the end of a test, where a release
    /// must not depend on whether a generation had reached the model yet.
    /// </summary>
    public void Open()
    {
        Volatile.Write(ref _open, true);
        _release.TrySetResult();
    }

    private bool _open;

    public Task<IReadOnlyList<ModelInfo>> ListModelsAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ModelInfo>>([new ModelInfo(ModelId, Name, null, 4096, "held", null, true)]);

    public IChatClient GetChatClient(string modelId) => new Client(this);

    public IAsyncEnumerable<ChatResponseUpdate> CompleteAsync(string modelId, string prompt, ChatOptions? options, CancellationToken cancellationToken) =>
        StreamAsync(cancellationToken);

    public Task<ProviderHealth> CheckHealthAsync(CancellationToken cancellationToken) => Task.FromResult(new ProviderHealth(Name, true, "held"));

    private async IAsyncEnumerable<ChatResponseUpdate> StreamAsync([EnumeratorCancellation] CancellationToken ct)
    {
        var release = _release.Task;
        Interlocked.Increment(ref _started);
        yield return new ChatResponseUpdate(ChatRole.Assistant, FirstToken);
        if (!Volatile.Read(ref _open)) await release.WaitAsync(ct);
        yield return new ChatResponseUpdate(ChatRole.Assistant, " done") { FinishReason = ChatFinishReason.Stop };
    }

    private sealed class Client(HeldModels owner) : IChatClient
    {
        public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
        {
            var updates = new List<ChatResponseUpdate>();
            await foreach (var update in owner.StreamAsync(cancellationToken)) updates.Add(update);
            return updates.ToChatResponse();
        }

        public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            owner.StreamAsync(cancellationToken);

        public object? GetService(Type serviceType, object? serviceKey = null) => null;

        public void Dispose()
        {
        }
    }
}

/// <summary>Per-user concurrent generations: every door counts, one user's load never refuses another's.</summary>
public sealed class ConcurrentGenerationLimitTests : IAsyncLifetime
{
    private readonly HeldModels _models = new();
    private TestApp _app = null!;

    public async Task InitializeAsync()
    {
        _app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?>
        {
            ["Sutazai:Inference:Ollama:AutoDetect"] = "false",
            ["Sutazai:Inference:DefaultModel"] = HeldModels.ModelId,
            ["Sutazai:RateLimits:ConcurrentGenerationsPerUser"] = "2",
        }, services: s => s.AddSingleton<IModelProvider>(_models));
        using var client = _app.Client();
        await Accounts.RegisterAsync(client); // the first account is the administrator; the tests use normal ones
    }

    public async Task DisposeAsync()
    {
        _models.Open();
        await _app.DisposeAsync();
    }

    private async Task<(TestUser User, HttpClient Client)> UserAsync()
    {
        var (user, tokens) = await Accounts.RegisterAndLoginAsync(_app.Client());
        return (user, _app.Client(tokens.AccessToken));
    }

    /// <summary>Starts a streamed generation and returns once its first token arrived (it then waits for a release).</summary>
    private static async Task<HttpResponseMessage> HoldGenerateAsync(HttpClient client)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/generate") { Content = JsonContent.Create(new { prompt = "hold", stream = true }) };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return response;
    }

    private static async Task AssertTooManyAsync(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal("2", response.Headers.GetValues("Retry-After").Single());
        var body = await response.ReadJsonAsync();
        Assert.Equal(429, body.GetProperty("status").GetInt32());
        Assert.Equal("You already have 2 generation(s) running, the most one user may run at once. Wait for one to finish or stop it.", body.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Generate_BeyondTheLimit_Is429WithRetryAfter_AnotherUserIsServed_AndAFinishedOneFreesASlot()
    {
        var (_, alice) = await UserAsync();
        var (_, bob) = await UserAsync();
        using var first = await HoldGenerateAsync(alice);
        using var second = await HoldGenerateAsync(alice);
        var startedBefore = _models.Started;

        await AssertTooManyAsync(await alice.PostAsJsonAsync("/api/v1/generate", new { prompt = "third" }));
        Assert.Equal(startedBefore, _models.Started); // refused before the model was asked

        using var bobs = await HoldGenerateAsync(bob);
        Assert.Equal(startedBefore + 1, _models.Started);

        _models.ReleaseAll();
        Assert.Contains("event: done", await first.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Contains("event: done", await second.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Contains("event: done", await bobs.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using var again = await HoldGenerateAsync(alice);
        _models.ReleaseAll();
        Assert.Contains("event: done", await again.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConversationReply_And_Socket_AndV1_CountTowardTheSameLimit_AndARefusedReplyStoresNothing()
    {
        var (user, alice) = await UserAsync();
        using var held = await HoldGenerateAsync(alice);

        var conversation = await (await alice.PostAsJsonAsync("/api/v1/conversations", new { title = "limits" })).ReadJsonAsync();
        var id = conversation.GetProperty("id").GetGuid();
        var request = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/conversations/{id}/messages") { Content = JsonContent.Create(new { content = "second one" }) };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        using var reply = await alice.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, reply.StatusCode);

        // Two running (generate + reply): the conversation door refuses the third and stores nothing.
        var other = (await (await alice.PostAsJsonAsync("/api/v1/conversations", new { title = "other" })).ReadJsonAsync()).GetProperty("id").GetGuid();
        await AssertTooManyAsync(await alice.PostAsJsonAsync($"/api/v1/conversations/{other}/messages", new { content = "third" }));
        Assert.Equal(0, await _app.WithDbAsync(db => db.Messages.CountAsync(m => m.ConversationId == other)));

        // The OpenAI-compatible door answers in OpenAI's shape.
        var v1 = await alice.PostAsJsonAsync("/v1/chat/completions", new { model = HeldModels.ModelId, messages = new[] { new { role = "user", content = "hi" } } });
        Assert.Equal(HttpStatusCode.TooManyRequests, v1.StatusCode);
        Assert.Equal("2", v1.Headers.GetValues("Retry-After").Single());
        var error = (await v1.ReadJsonAsync()).GetProperty("error");
        Assert.Equal("rate_limit_error", error.GetProperty("type").GetString());
        Assert.Equal("rate_limit_exceeded", error.GetProperty("code").GetString());

        // The socket door: an error frame, the socket stays open, nothing stored.
        var tokens = await Accounts.LoginAsync(_app.Client(), user.Username);
        await using (var chat = await ChatClient.ConnectAsync(_app, tokens.AccessToken))
        {
            await chat.ReceiveAsync();
            await chat.SendAsync(new { type = "chat", message = "over the socket", conversationId = other });
            var frame = (await chat.ReceiveAsync())!.Value;
            Assert.Equal("error", frame.GetProperty("type").GetString());
            Assert.Equal("rate_limited", frame.GetProperty("code").GetString());
            await chat.SendAsync(new { type = "ping" });
            Assert.Equal("pong", (await chat.ReceiveAsync())!.Value.GetProperty("type").GetString());
        }
        Assert.Equal(0, await _app.WithDbAsync(db => db.Messages.CountAsync(m => m.ConversationId == other)));

        // The reply's generation may not have reached the model yet: open the gate for good, so nothing waits on timing.
        _models.Open();
        await held.Content.ReadAsStringAsync();
        await reply.Content.ReadAsStringAsync();
        var fits = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/conversations/{other}/messages") { Content = JsonContent.Create(new { content = "now it fits" }) };
        fits.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        using var after = await alice.SendAsync(fits, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
        Assert.Contains("event: message_end", await after.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnAgentModelStep_HoldsASlot_AndAdminsSeeTheRunningCount()
    {
        var (user, alice) = await UserAsync();
        var agent = await alice.PostAsJsonAsync("/api/v1/agents", new
        {
            name = "held-agent", instructions = "You are a test agent.", model = HeldModels.ModelId, tools = Array.Empty<string>(), maxSteps = 2, timeoutSeconds = 120,
        });
        Assert.Equal(HttpStatusCode.Created, agent.StatusCode);
        var agentId = (await agent.ReadJsonAsync()).GetProperty("id").GetString();
        var started = _models.Started;
        var run = await alice.PostAsJsonAsync($"/api/v1/agents/{agentId}/runs", new { input = "think", model = HeldModels.ModelId });
        Assert.Equal(HttpStatusCode.Accepted, run.StatusCode);
        var runId = (await run.ReadJsonAsync()).GetProperty("runId").GetGuid();
        // The step has begun once the model was asked (the run's own event stream would race the worker; the model does not).
        await WaitForAsync(() => _models.Started > started);

        using var held = await HoldGenerateAsync(alice);
        await AssertTooManyAsync(await alice.PostAsJsonAsync("/api/v1/generate", new { prompt = "third" }));

        var adminTokens = await Accounts.LoginAsync(_app.Client(), (await _app.WithDbAsync(db => db.Users.OrderBy(u => u.CreatedAt).FirstAsync())).UserName!);
        using var admin = _app.Client(adminTokens.AccessToken);
        var usage = (await admin.GetFromJsonAsync<List<UsageRow>>("/api/v1/admin/usage"))!;
        var mine = usage.Single(u => u.UserId == user.Id);
        Assert.Equal(2, mine.RunningGenerations);
        Assert.Equal(2, mine.ConcurrentGenerationLimit);
        Assert.Equal(HttpStatusCode.Forbidden, (await alice.GetAsync("/api/v1/admin/usage")).StatusCode);

        _models.Open();
        await held.Content.ReadAsStringAsync();
        var done = await Agents.Runs.WaitForAsync(alice, runId, "succeeded", "failed");
        Assert.Equal("succeeded", done.GetProperty("status").GetString());
    }

    /// <summary>Polls a state the test cannot be told about directly; fails after a generous bound, never sleeps a guess.</summary>
    private static async Task WaitForAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "The condition did not become true within 60 s.");
            await Task.Delay(20);
        }
    }

    private sealed record UsageRow(Guid UserId, string Username, int Documents, long StorageBytes, long? StorageQuotaBytes, int RunningGenerations, int ConcurrentGenerationLimit);
}

/// <summary>Requests per minute on expensive routes (per user) and the storage quota.</summary>
public sealed class RequestAndStorageLimitTests : IAsyncLifetime
{
    private TestApp _app = null!;

    public async Task InitializeAsync()
    {
        _app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?>
        {
            ["Sutazai:Inference:Ollama:AutoDetect"] = "false",
            ["Sutazai:RateLimits:ExpensivePerMinute"] = "3",
            ["Sutazai:Quotas:StorageBytesPerUser"] = "100",
        });
        using var client = _app.Client();
        await Accounts.RegisterAsync(client);
    }

    public async Task DisposeAsync() => await _app.DisposeAsync();

    private async Task<(TestUser User, HttpClient Client)> UserAsync()
    {
        var (user, tokens) = await Accounts.RegisterAndLoginAsync(_app.Client());
        return (user, _app.Client(tokens.AccessToken));
    }

    [Fact]
    public async Task ExpensiveRoutes_ShareAPerUserBudget_429WithRetryAfter_OtherUsersUnaffected()
    {
        var (_, alice) = await UserAsync();
        var (_, bob) = await UserAsync();
        // Invalid bodies still spend the budget: the limit is on requests, before any work.
        for (var i = 0; i < 2; i++)
            Assert.Equal(HttpStatusCode.UnprocessableEntity, (await alice.PostAsJsonAsync("/api/v1/generate", new { })).StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await alice.PostAsJsonAsync("/api/v1/documents/url", new { url = "not a url" })).StatusCode);

        var limited = await alice.PostAsJsonAsync("/api/v1/generate", new { });
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        var retryAfter = int.Parse(limited.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(retryAfter, 1, 60);
        var body = await limited.ReadJsonAsync();
        Assert.StartsWith("Too many requests to expensive routes", body.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await alice.PostAsJsonAsync("/v1/embeddings", new { input = "x" })).StatusCode);

        // Cheap routes are not counted, and another user has their own budget.
        Assert.Equal(HttpStatusCode.OK, (await alice.GetAsync("/api/v1/conversations")).StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await bob.PostAsJsonAsync("/api/v1/generate", new { })).StatusCode);
    }

    [Fact]
    public async Task Upload_PastTheStorageQuota_Is507_StoresNothing_AndAdminsSeeUsage()
    {
        var (user, carol) = await UserAsync();
        var first = await UploadAsync(carol, "first.txt", new string('a', 60));
        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);

        var second = await UploadAsync(carol, "second.txt", new string('b', 60));
        Assert.Equal((HttpStatusCode)507, second.StatusCode);
        var problem = await second.ReadJsonAsync();
        Assert.Equal("'second.txt' (60 bytes) would exceed your storage quota: 60 of 100 bytes are used. Delete documents to make room.", problem.GetProperty("detail").GetString());
        Assert.Equal(1, await _app.WithDbAsync(db => db.Documents.CountAsync(d => d.OwnerId == user.Id)));
        Assert.Single(Directory.GetFiles(Path.Combine(_app.DataDir, "documents")));

        var adminName = (await _app.WithDbAsync(db => db.Users.OrderBy(u => u.CreatedAt).FirstAsync())).UserName!;
        using var admin = _app.Client((await Accounts.LoginAsync(_app.Client(), adminName)).AccessToken);
        var usage = await admin.GetAsync("/api/v1/admin/usage");
        Assert.Equal(HttpStatusCode.OK, usage.StatusCode);
        var row = (await usage.ReadJsonAsync()).EnumerateArray().Single(r => r.GetProperty("userId").GetGuid() == user.Id);
        Assert.Equal(1, row.GetProperty("documents").GetInt32());
        Assert.Equal(60, row.GetProperty("storageBytes").GetInt64());
        Assert.Equal(100, row.GetProperty("storageQuotaBytes").GetInt64());
    }

    private static Task<HttpResponseMessage> UploadAsync(HttpClient client, string name, string text)
    {
        var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(Encoding.UTF8.GetBytes(text));
        file.Headers.ContentType = new MediaTypeHeaderValue("text/plain");
        form.Add(file, "file", name);
        return client.PostAsync("/api/v1/documents", form);
    }
}

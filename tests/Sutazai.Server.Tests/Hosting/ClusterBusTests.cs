using Sutazai.Agents;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Sutazai.Inference.Gguf;
using Sutazai.Server.Agents;
using Sutazai.Server.Hosting;
using Sutazai.Server.Tests.Chat;
using Sutazai.Server.Tests.Infrastructure;
using Expect = Sutazai.TestSupport.DeterministicModelSpec.DefaultExpectations;

namespace Sutazai.Server.Tests.Hosting;

/// <summary>The Redis cluster bus against the real Redis that scripts/test.sh starts.</summary>
public sealed class ClusterBusTests
{
    public const string Variable = "SUTAZAI_TEST_REDIS";

    public static string Redis => Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } address
        ? address
        : throw new InvalidOperationException($"{Variable} is not set. Run the tests through ./scripts/test.sh, which starts Redis and sets it.");

    private static RedisClusterBus Bus(string prefix) =>
        new(new RedisOptions { Connection = Redis, ChannelPrefix = prefix }, NullLogger<RedisClusterBus>.Instance);

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        for (var i = 0; i < 200 && !condition(); i++) await Task.Delay(25);
        Assert.True(condition(), what);
    }

    [Fact]
    public async Task Redis_DeliversToEveryOtherNode_InOrder_NeverBackToThePublisher()
    {
        var prefix = "t" + Guid.NewGuid().ToString("N");
        using var a = Bus(prefix);
        using var b = Bus(prefix);
        using var c = Bus(prefix);
        var atA = new ConcurrentQueue<string>();
        var atB = new ConcurrentQueue<string>();
        var atC = new ConcurrentQueue<string>();
        using var subA = a.Subscribe("topic", atA.Enqueue);
        using var subB = b.Subscribe("topic", atB.Enqueue);
        var subC = c.Subscribe("topic", atC.Enqueue);
        var sent = Enumerable.Range(0, 200).Select(i => $"event {i} | with a bar").ToList();
        foreach (var e in sent) a.Publish("topic", e);

        await WaitUntilAsync(() => atB.Count == sent.Count && atC.Count == sent.Count, "B and C receive all 200 events");
        Assert.Equal(sent, atB);
        Assert.Equal(sent, atC);
        Assert.Empty(atA);

        // Another topic and another deployment's prefix are not heard; an ended subscription hears nothing more.
        subC.Dispose();
        using var other = Bus("other" + prefix);
        other.Publish("topic", "from another deployment");
        b.Publish("elsewhere", "another topic");
        b.Publish("topic", "last");
        await WaitUntilAsync(() => atA.Count == 1, "A receives B's event");
        Assert.Equal(["last"], atA);
        await Task.Delay(200);
        Assert.Equal(sent.Count, atC.Count);
        Assert.Equal(sent.Count, atB.Count);
    }

    [Fact]
    public async Task RunHub_RelaysRunEvents_ToTheWatchersOfAnotherNode()
    {
        var prefix = "t" + Guid.NewGuid().ToString("N");
        using var busA = Bus(prefix);
        using var busB = Bus(prefix);
        using var hubA = new RunHub(busA);
        using var hubB = new RunHub(busB);
        var runId = Guid.NewGuid();
        var userId = Guid.NewGuid();
        using var watcher = hubB.Watch(runId);
        var published = new ConcurrentQueue<RunEvent>();
        hubB.Published += published.Enqueue;

        hubA.Publish(new RunEvent("token", runId, userId, new { text = "Hel" }));
        hubA.Publish(new RunEvent("token", runId, userId, new { text = "lo" }));
        hubA.Publish(new RunEvent("status", Guid.NewGuid(), userId, new { status = "running" })); // another run: not this watcher's

        var received = new List<RunEvent>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        while (received.Count < 2) received.Add(await watcher.Reader.ReadAsync(timeout.Token));
        Assert.Equal(["token", "token"], received.Select(e => e.Type));
        Assert.Equal(["Hel", "lo"], received.Select(e => ((JsonElement)e.Data).GetProperty("text").GetString()));
        Assert.All(received, e => Assert.Equal((runId, userId), (e.RunId, e.UserId)));
        await WaitUntilAsync(() => published.Count == 3, "the other node's Published event sees all three");
        Assert.False(watcher.Reader.TryRead(out _));
    }
}

/// <summary>The authentication rate limit with Redis: one window for every node of a deployment.</summary>
public sealed class SharedRateLimitTests
{
    private static TestApp Node(string prefix, string? redis = null) => TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?>
    {
        ["Sutazai:RateLimits:AuthPerMinute"] = "4",
        ["Sutazai:Redis:Connection"] = redis ?? ClusterBusTests.Redis,
        ["Sutazai:Redis:ChannelPrefix"] = prefix,
    });

    private static async Task<HttpStatusCode> BadLoginAsync(HttpClient client) =>
        (await client.PostAsJsonAsync("/api/v1/auth/login", new { login = "nobody", password = "Wrong#Password1" })).StatusCode;

    [Fact]
    public async Task AuthRateLimit_IsCountedOnceForEveryNode()
    {
        var prefix = "t" + Guid.NewGuid().ToString("N");
        await using var a = Node(prefix);
        await using var b = Node(prefix);
        await using var otherDeployment = Node("other" + prefix);
        using var clientA = a.Client();
        using var clientB = b.Client();
        using var clientC = otherDeployment.Client();

        Assert.Equal(HttpStatusCode.Unauthorized, await BadLoginAsync(clientA));
        Assert.Equal(HttpStatusCode.Unauthorized, await BadLoginAsync(clientB));
        Assert.Equal(HttpStatusCode.Unauthorized, await BadLoginAsync(clientA));
        Assert.Equal(HttpStatusCode.Unauthorized, await BadLoginAsync(clientB));
        // The fifth attempt, on either node, is over the shared limit of 4 a minute.
        var limited = await clientA.PostAsJsonAsync("/api/v1/auth/login", new { login = "nobody", password = "Wrong#Password1" });
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.InRange(int.Parse(limited.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture), 1, 60);
        Assert.Contains("Too many authentication requests", (await limited.ReadJsonAsync()).GetProperty("detail").GetString());
        Assert.Equal(HttpStatusCode.TooManyRequests, await BadLoginAsync(clientB));
        // Another deployment on the same Redis counts apart.
        Assert.Equal(HttpStatusCode.Unauthorized, await BadLoginAsync(clientC));
    }

    [Fact]
    public async Task AuthRateLimit_FallsBackToThisNode_WhileRedisIsUnreachable()
    {
        var port = Sutazai.Inference.Tests.Fakes.FakeServer.ClosedPortRoot().Port;
        await using var app = Node("t" + Guid.NewGuid().ToString("N"), $"127.0.0.1:{port},connectTimeout=500,syncTimeout=500,asyncTimeout=500");
        using var client = app.Client();
        for (var i = 0; i < 4; i++) Assert.Equal(HttpStatusCode.Unauthorized, await BadLoginAsync(client));
        Assert.Equal(HttpStatusCode.TooManyRequests, await BadLoginAsync(client));
        var ready = await client.GetAsync("/health/ready");
        // Degraded, not down: the node serves on while Redis is away.
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        var checks = await ready.ReadJsonAsync();
        Assert.Equal("degraded", checks.GetProperty("status").GetString());
        var redis = checks.GetProperty("checks").GetProperty("redis");
        Assert.Equal("degraded", redis.GetProperty("status").GetString());
        Assert.StartsWith($"Redis at 127.0.0.1:{port} is unreachable (", redis.GetProperty("description").GetString());
        // The live-event hubs start anyway (they subscribe once Redis is back).
        Assert.NotNull(app.Services.GetRequiredService<RunHub>());
        Assert.NotNull(app.Services.GetRequiredService<Sutazai.Server.Conversations.ReplyHub>());
    }
}

/// <summary>
/// Two full nodes on one PostgreSQL database and one data folder, with Redis between them: a chat reply generated on
/// node A is followed token by token by a /ws/chat socket on node B, shows as generating there, and B can stop it.
/// </summary>
public sealed class CrossNodeRepliesTests : IAsyncLifetime
{
    private const string Model = "tiny-deterministic", Looping = "tiny-looping";
    private readonly string _prefix = "t" + Guid.NewGuid().ToString("N");
    private TestApp _a = null!;
    private TestApp _b = null!;

    private Dictionary<string, string?> Settings(string? database)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Sutazai:Inference:LlamaCpp:ContextSize"] = "16384",
            ["Sutazai:Inference:Ollama:AutoDetect"] = "false",
            ["Sutazai:Inference:DefaultModel"] = Model,
            ["Sutazai:Redis:Connection"] = ClusterBusTests.Redis,
            ["Sutazai:Redis:ChannelPrefix"] = _prefix,
        };
        if (database is not null) settings["Sutazai:Database:ConnectionString"] = TestApp.PostgresConnectionString(database);
        return settings;
    }

    public async Task InitializeAsync()
    {
        _a = TestApp.Create(DbProvider.Postgres, Settings(null));
        ModelAppFixture.WriteModel(_a.DataDir, Model);
        var spec = DeterministicModelSpec.Default();
        var successors = new Dictionary<string, string>(spec.Successors, StringComparer.Ordinal) { ["?"] = "▁la" };
        TinyModels.WriteDeterministic(Path.Combine(_a.DataDir, "models", Looping + ".gguf"), spec with { Successors = successors, ContextLength = 16384, BlockCount = 8 });
        using var anon = _a.Client();
        await Accounts.RegisterAsync(anon); // the admin
        _b = TestApp.Create(DbProvider.Postgres, Settings(_a.PostgresDatabase), _a.DataDir);
        _ = _b.Services.GetRequiredService<Sutazai.Server.Conversations.ReplyHub>(); // subscribed before any reply starts
        _ = _a.Services.GetRequiredService<Sutazai.Server.Conversations.ReplyHub>();
        await Task.Delay(500);
    }

    public async Task DisposeAsync()
    {
        await _b.DisposeAsync();
        await _a.DisposeAsync();
    }

    private async Task<(HttpClient A, HttpClient B, string Token)> UserAsync()
    {
        using var anon = _a.Client();
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        return (_a.Client(tokens.AccessToken), _b.Client(tokens.AccessToken), tokens.AccessToken);
    }

    private static async Task<Guid> CreateAsync(HttpClient client, string model) =>
        (await (await client.PostAsJsonAsync("/api/v1/conversations", new { model })).ReadJsonAsync()).GetProperty("id").GetGuid();

    private async Task<ChatClient> WatchOnBAsync(string token, Guid conversationId)
    {
        var socket = await ChatClient.ConnectAsync(_b, token);
        Assert.True((await socket.ReadConnectionAsync()).GetProperty("authenticated").GetBoolean());
        await socket.SendAsync(new { type = "get_history", conversationId });
        await socket.ReceiveUntilAsync("history");
        return socket;
    }

    [Fact]
    public async Task AReplyGeneratedOnNodeA_StreamsToASocketOnNodeB()
    {
        var (a, _, token) = await UserAsync();
        var id = await CreateAsync(a, Model);
        await using var socket = await WatchOnBAsync(token, id);

        var sent = await a.PostAsJsonAsync($"/api/v1/conversations/{id}/messages", new { content = "Hello?", options = new { temperature = 0 } });
        Assert.Equal(HttpStatusCode.Created, sent.StatusCode);

        var frames = await socket.ReceiveUntilAsync("stream_end");
        var types = frames.Select(f => f.GetProperty("type").GetString()).ToList();
        Assert.Equal(["message_received", "stream_start"], types.Take(2));
        Assert.Equal("Hello?", frames[0].GetProperty("content").GetString());
        Assert.Equal(Expect.ChatReply, string.Concat(frames.Where(f => f.GetProperty("type").GetString() == "stream_chunk").Select(f => f.GetProperty("content").GetString())));
        Assert.Equal(Expect.ChatReply, frames[^1].GetProperty("fullResponse").GetString());
        Assert.Equal("complete", frames[^1].GetProperty("status").GetString());
    }

    [Fact]
    public async Task NodeB_SeesTheReplyOfNodeA_Running_AndCanStopIt()
    {
        var (a, b, _) = await UserAsync();
        var id = await CreateAsync(a, Looping);
        using var response = await a.SendAsync(Sse.Post($"/api/v1/conversations/{id}/messages", new { content = "go", options = new { temperature = 0, maxTokens = 16000 } }), HttpCompletionOption.ResponseHeadersRead);
        Guid assistantId = default;
        var received = 0;
        await foreach (var e in Sse.ReadAsync(response))
        {
            if (e.Event == "message_start") assistantId = e.Data.GetProperty("assistantMessageId").GetGuid();
            if (e.Event == "token" && ++received == 12) break;
        }

        Assert.True((await (await b.GetAsync($"/api/v1/conversations/{id}")).ReadJsonAsync()).GetProperty("generating").GetBoolean());
        Assert.Equal(HttpStatusCode.Conflict, (await b.PostAsJsonAsync($"/api/v1/conversations/{id}/messages", new { content = "again" })).StatusCode);

        var stop = await b.PostAsync($"/api/v1/conversations/{id}/stop", null);
        Assert.Equal(HttpStatusCode.OK, stop.StatusCode);
        var stopped = await stop.ReadJsonAsync();
        Assert.Equal("stopped", stopped.GetProperty("status").GetString());
        Assert.StartsWith(Expect.ChatReply + " la la", stopped.GetProperty("content").GetString());
        var stored = await _a.WithDbAsync(db => db.Messages.AsNoTracking().SingleAsync(m => m.Id == assistantId));
        Assert.Equal("stopped", stored.Status);
        Assert.Equal(stopped.GetProperty("content").GetString(), stored.Content);
        Assert.False((await (await b.GetAsync($"/api/v1/conversations/{id}")).ReadJsonAsync()).GetProperty("generating").GetBoolean());
    }
}

/// <summary>An in-process stand-in for Redis: buses linked together deliver to each other, in order.</summary>
internal sealed class LinkedBus : IClusterBus
{
    private readonly List<LinkedBus> _peers;
    private readonly ConcurrentDictionary<string, List<Action<string>>> _handlers = new();
    private readonly Lock _order = new();

    private LinkedBus(List<LinkedBus> peers) => _peers = peers;

    public static (LinkedBus A, LinkedBus B) Pair()
    {
        var peers = new List<LinkedBus>();
        var a = new LinkedBus(peers);
        var b = new LinkedBus(peers);
        peers.AddRange([a, b]);
        return (a, b);
    }

    public string NodeId { get; } = Guid.NewGuid().ToString("N");

    public bool ReachesOtherNodes => true;

    public bool Connected { get; set; } = true;

    public void Publish(string topic, string payload)
    {
        if (!Connected) return;
        foreach (var peer in _peers.Where(p => p != this && p.Connected))
            lock (peer._order)
                foreach (var handler in peer._handlers.GetValueOrDefault(topic)?.ToList() ?? []) handler(payload);
    }

    public IDisposable Subscribe(string topic, Action<string> handler)
    {
        _handlers.GetOrAdd(topic, _ => []).Add(handler);
        return new LocalClusterBus.Unsubscriber(() => _handlers[topic].Remove(handler));
    }
}

public sealed class ReplyMirrorTests
{
    private static MessageResponseFactory Messages => new();

    private sealed class MessageResponseFactory
    {
        public Sutazai.Server.Conversations.MessageResponse User(Guid conversationId) =>
            Sutazai.Server.Conversations.MessageResponse.From(new Sutazai.Data.Entities.ChatMessageEntity
            {
                Id = Guid.NewGuid(), ConversationId = conversationId, Role = "user", Content = "hi", CreatedAt = DateTime.UtcNow,
            });
    }

    [Fact]
    public async Task AMirror_FollowsTheReply_StopsIt_AndEndsWithAnErrorWhenItsNodeFallsSilent()
    {
        var (busA, busB) = LinkedBus.Pair();
        using var hubA = new Sutazai.Server.Conversations.ReplyHub(busA, TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(400));
        using var hubB = new Sutazai.Server.Conversations.ReplyHub(busB, TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(400));
        var started = new List<Sutazai.Server.Conversations.RunningReply>();
        var (conversation, user) = (Guid.NewGuid(), Guid.NewGuid());
        using var watching = hubB.WatchUser(user, started.Add);
        using var otherUser = hubB.WatchUser(Guid.NewGuid(), _ => Assert.Fail("another user's subscription saw the reply"));
        var reply = new Sutazai.Server.Conversations.RunningReply(conversation, user, Guid.NewGuid());
        Assert.True(hubA.TryStart(reply));
        reply.Publish(new Sutazai.Server.Conversations.ReplyEvent.Started(conversation, Messages.User(conversation), reply.AssistantMessageId, "m", "llamacpp"));
        reply.Publish(new Sutazai.Server.Conversations.ReplyEvent.Token("Hel"));
        reply.Publish(new Sutazai.Server.Conversations.ReplyEvent.Token("lo"));

        var mirror = Assert.Single(started);
        Assert.True(mirror.IsMirror);
        Assert.Same(mirror, hubB.Get(conversation, user));
        Assert.Null(hubB.Get(conversation, Guid.NewGuid())); // another user's reply is not theirs to see
        Assert.True(hubB.IsRunning(conversation));
        Assert.Equal(0, hubB.RunningCount);

        // Stopping the mirror stops the reply on its node.
        await mirror.Stop.CancelAsync();
        Assert.True(reply.Stop.IsCancellationRequested);

        // While node A keeps saying it is alive the mirror stays, well past the timeout…
        await Task.Delay(800);
        Assert.True(hubB.IsRunning(conversation));
        // …and when A falls silent, the mirror ends with an error and the conversation is idle on B.
        busA.Connected = false;
        var events = new List<Sutazai.Server.Conversations.ReplyEvent>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await foreach (var e in mirror.WatchAsync(timeout.Token)) events.Add(e);
        Assert.Equal(["Hel", "lo"], events.OfType<Sutazai.Server.Conversations.ReplyEvent.Token>().Select(t => t.Content));
        var failed = Assert.IsType<Sutazai.Server.Conversations.ReplyEvent.Failed>(events[^1]);
        Assert.Equal(Sutazai.Server.Conversations.ReplyFailure.NodeLost, failed.Failure);
        Assert.Contains("stopped answering", failed.Detail);
        Assert.False(hubB.IsRunning(conversation));
        Assert.True(mirror.Completion.Task.IsCompleted);
    }
}

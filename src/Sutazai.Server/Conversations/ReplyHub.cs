using System.Collections.Concurrent;
using System.Text.Json;
using System.Threading.Channels;
using Sutazai.Server.Hosting;

namespace Sutazai.Server.Conversations;

/// <summary>What watchers of a reply being generated see.</summary>
public abstract record ReplyEvent
{
    public sealed record Started(Guid ConversationId, MessageResponse UserMessage, Guid AssistantMessageId, string Model, string Provider) : ReplyEvent;

    public sealed record Token(string Content) : ReplyEvent;

    public sealed record Ended(MessageResponse Message) : ReplyEvent;

    public sealed record Failed(ReplyFailure Failure, string Detail, MessageResponse? Message) : ReplyEvent;
}

/// <summary>
/// A reply being generated. It runs detached from the request that started it, so a client that disconnects does not
/// lose it (it is still stored when done); any number of watchers (the SSE response, other tabs, WebSockets) subscribe
/// and get the events so far, then the rest live.
/// </summary>
public sealed class RunningReply(Guid conversationId, Guid userId, Guid assistantMessageId)
{
    private readonly Lock _gate = new();
    private readonly List<ReplyEvent> _history = [];
    private readonly List<Channel<ReplyEvent>> _watchers = [];
    private bool _done;

    public Guid ConversationId { get; } = conversationId;

    public Guid UserId { get; } = userId;

    public Guid AssistantMessageId { get; } = assistantMessageId;

    public CancellationTokenSource Stop { get; } = new();

    public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>True for a copy of a reply another node generates (fed from the cluster bus).</summary>
    public bool IsMirror { get; init; }

    /// <summary>When the last event arrived (mirrors expire when their node falls silent).</summary>
    public long LastEventAt { get; private set; } = Environment.TickCount64;

    /// <summary>Also called with every event, in order (the hub sends a local reply's events to the other nodes).</summary>
    internal Action<ReplyEvent>? Forward { get; set; }

    internal void Touch() => LastEventAt = Environment.TickCount64;

    public void Publish(ReplyEvent e)
    {
        lock (_gate)
        {
            if (_done) return;
            Touch();
            Forward?.Invoke(e);
            _history.Add(e);
            foreach (var watcher in _watchers) watcher.Writer.TryWrite(e);
            if (e is ReplyEvent.Ended or ReplyEvent.Failed)
            {
                _done = true;
                foreach (var watcher in _watchers) watcher.Writer.TryComplete();
                _watchers.Clear();
            }
        }
    }

    /// <summary>Every event so far, then the live ones, until the reply ends.</summary>
    public IAsyncEnumerable<ReplyEvent> WatchAsync(CancellationToken ct)
    {
        var channel = Channel.CreateUnbounded<ReplyEvent>(new UnboundedChannelOptions { SingleReader = true });
        lock (_gate)
        {
            foreach (var e in _history) channel.Writer.TryWrite(e);
            if (_done) channel.Writer.TryComplete();
            else _watchers.Add(channel);
        }
        return channel.Reader.ReadAllAsync(ct);
    }
}

/// <summary>
/// Replies being generated right now, one per conversation at most. With a cluster bus that reaches other nodes
/// (Redis), a reply generated here is mirrored on every other node (topic <c>reply-events</c>), so sockets and pages of
/// the same user there follow it token by token, see it running, and can stop it (topic <c>reply-stop</c>). A node that
/// generates replies says so every <see cref="AliveInterval"/>; a mirror that hears nothing for
/// <see cref="MirrorTimeout"/> ends with an error (its node went away; what was stored stays readable).
/// </summary>
public sealed class ReplyHub : IDisposable
{
    public const string EventsTopic = "reply-events", StopTopic = "reply-stop";
    public static readonly TimeSpan AliveInterval = TimeSpan.FromSeconds(20);
    public static readonly TimeSpan MirrorTimeout = TimeSpan.FromSeconds(90);

    private readonly ConcurrentDictionary<Guid, RunningReply> _running = new();
    private readonly ConcurrentDictionary<Guid, RunningReply> _mirrors = new();
    private readonly IClusterBus _bus;
    private readonly List<IDisposable> _subscriptions = [];
    private readonly Timer? _alive;
    private readonly TimeSpan _mirrorTimeout;

    private sealed record WireReply(string Kind, Guid ConversationId, Guid UserId, Guid AssistantMessageId,
        string? Content = null, MessageResponse? UserMessage = null, string? Model = null, string? Provider = null,
        MessageResponse? Message = null, ReplyFailure Failure = ReplyFailure.Generation, string? Detail = null);

    public ReplyHub(IClusterBus bus) : this(bus, AliveInterval, MirrorTimeout)
    {
    }

    /// <summary>With other intervals (tests).</summary>
    internal ReplyHub(IClusterBus bus, TimeSpan aliveInterval, TimeSpan mirrorTimeout)
    {
        _bus = bus;
        _mirrorTimeout = mirrorTimeout;
        if (!bus.ReachesOtherNodes) return;
        _subscriptions.Add(bus.Subscribe(EventsTopic, OnRemoteEvent));
        _subscriptions.Add(bus.Subscribe(StopTopic, payload =>
        {
            if (Guid.TryParse(payload, out var conversationId) && _running.TryGetValue(conversationId, out var local)) local.Stop.Cancel();
        }));
        _alive = new Timer(_ => Heartbeat(), null, aliveInterval, aliveInterval);
    }

    private readonly ConcurrentDictionary<Guid, ConcurrentDictionary<object, Action<RunningReply>>> _watchers = new();

    /// <summary>
    /// Calls <paramref name="started"/> with every reply of <paramref name="userId"/> that starts from now on (here or,
    /// mirrored, on another node) until the subscription is disposed: how a socket follows replies, its own included.
    /// </summary>
    public IDisposable WatchUser(Guid userId, Action<RunningReply> started)
    {
        var key = new object();
        _watchers.GetOrAdd(userId, _ => new()).TryAdd(key, started);
        return new Unsubscribe(() =>
        {
            if (_watchers.TryGetValue(userId, out var mine)) mine.TryRemove(key, out _);
        });
    }

    private sealed class Unsubscribe(Action action) : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0) action();
        }
    }

    private void Announce(RunningReply reply)
    {
        if (!_watchers.TryGetValue(reply.UserId, out var mine)) return;
        foreach (var started in mine.Values) started(reply);
    }

    public bool TryStart(RunningReply reply)
    {
        if (!_running.TryAdd(reply.ConversationId, reply)) return false;
        if (_bus.ReachesOtherNodes) reply.Forward = e => _bus.Publish(EventsTopic, JsonSerializer.Serialize(ToWire(reply, e), JsonSerializerOptions.Web));
        Announce(reply);
        return true;
    }

    public void Finish(RunningReply reply)
    {
        (reply.IsMirror ? _mirrors : _running).TryRemove(new KeyValuePair<Guid, RunningReply>(reply.ConversationId, reply));
        reply.Completion.TrySetResult();
    }

    /// <summary>The running reply of a conversation (generated here, else mirrored), only when it belongs to <paramref name="userId"/>.</summary>
    public RunningReply? Get(Guid conversationId, Guid userId) =>
        (_running.TryGetValue(conversationId, out var reply) || _mirrors.TryGetValue(conversationId, out reply)) && reply.UserId == userId ? reply : null;

    public bool IsRunning(Guid conversationId) => _running.ContainsKey(conversationId) || _mirrors.ContainsKey(conversationId);

    /// <summary>Replies being generated on this node now, across every user (the system monitor shows it).</summary>
    public int RunningCount => _running.Count;

    private static WireReply ToWire(RunningReply reply, ReplyEvent e) => e switch
    {
        ReplyEvent.Started s => new("started", reply.ConversationId, reply.UserId, reply.AssistantMessageId, UserMessage: s.UserMessage, Model: s.Model, Provider: s.Provider),
        ReplyEvent.Token t => new("token", reply.ConversationId, reply.UserId, reply.AssistantMessageId, Content: t.Content),
        ReplyEvent.Ended d => new("ended", reply.ConversationId, reply.UserId, reply.AssistantMessageId, Message: d.Message),
        ReplyEvent.Failed f => new("failed", reply.ConversationId, reply.UserId, reply.AssistantMessageId, Message: f.Message, Failure: f.Failure, Detail: f.Detail),
        _ => throw new ArgumentOutOfRangeException(nameof(e)),
    };

    private void OnRemoteEvent(string payload)
    {
        if (JsonSerializer.Deserialize<WireReply>(payload, JsonSerializerOptions.Web) is not { } w) return;
        if (w.Kind == "started")
        {
            var mirror = new RunningReply(w.ConversationId, w.UserId, w.AssistantMessageId) { IsMirror = true };
            mirror.Stop.Token.Register(() => _bus.Publish(StopTopic, w.ConversationId.ToString()));
            _mirrors[w.ConversationId] = mirror;
            mirror.Publish(new ReplyEvent.Started(w.ConversationId, w.UserMessage!, w.AssistantMessageId, w.Model ?? "", w.Provider ?? ""));
            Announce(mirror);
            return;
        }
        if (!_mirrors.TryGetValue(w.ConversationId, out var known) || known.AssistantMessageId != w.AssistantMessageId) return; // started before this node listened
        switch (w.Kind)
        {
            case "alive":
                known.Touch();
                break;
            case "token":
                known.Publish(new ReplyEvent.Token(w.Content ?? ""));
                break;
            case "ended":
                Finish(known); // first: whoever sees the end sees the conversation idle
                known.Publish(new ReplyEvent.Ended(w.Message!));
                break;
            case "failed":
                Finish(known);
                known.Publish(new ReplyEvent.Failed(w.Failure, w.Detail ?? "", w.Message));
                break;
        }
    }

    private void Heartbeat()
    {
        foreach (var reply in _running.Values)
            _bus.Publish(EventsTopic, JsonSerializer.Serialize(new WireReply("alive", reply.ConversationId, reply.UserId, reply.AssistantMessageId), JsonSerializerOptions.Web));
        var now = Environment.TickCount64;
        foreach (var mirror in _mirrors.Values.Where(m => now - m.LastEventAt > _mirrorTimeout.TotalMilliseconds).ToList())
        {
            Finish(mirror);
            mirror.Publish(new ReplyEvent.Failed(ReplyFailure.NodeLost,
                "The server generating this reply stopped answering; reload the conversation to see what was stored.", null));
        }
    }

    public void Dispose()
    {
        _alive?.Dispose();
        foreach (var subscription in _subscriptions) subscription.Dispose();
    }
}

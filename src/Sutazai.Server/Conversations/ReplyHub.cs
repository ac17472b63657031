using System.Collections.Concurrent;
using System.Threading.Channels;

namespace Sutazai.Server.Conversations;

/// <summary>What watchers of a reply being generated see.</summary>
public abstract record ReplyEvent
{
    public sealed record Started(Guid ConversationId, MessageResponse UserMessage, Guid AssistantMessageId, string Model, string Provider) : ReplyEvent;

    public sealed record Token(string Content) : ReplyEvent;

    public sealed record Ended(MessageResponse Message) : ReplyEvent;

    public sealed record Failed(int Status, string Detail, MessageResponse? Message) : ReplyEvent;
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

    public void Publish(ReplyEvent e)
    {
        lock (_gate)
        {
            if (_done) return;
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

/// <summary>Replies being generated right now, one per conversation at most.</summary>
public sealed class ReplyHub
{
    private readonly ConcurrentDictionary<Guid, RunningReply> _running = new();

    /// <summary>Raised when a reply starts, so open sockets of the same user can follow it.</summary>
    public event Action<RunningReply>? ReplyStarted;

    public bool TryStart(RunningReply reply)
    {
        if (!_running.TryAdd(reply.ConversationId, reply)) return false;
        ReplyStarted?.Invoke(reply);
        return true;
    }

    public void Finish(RunningReply reply)
    {
        _running.TryRemove(new KeyValuePair<Guid, RunningReply>(reply.ConversationId, reply));
        reply.Completion.TrySetResult();
    }

    /// <summary>The running reply of a conversation, only when it belongs to <paramref name="userId"/>.</summary>
    public RunningReply? Get(Guid conversationId, Guid userId) =>
        _running.TryGetValue(conversationId, out var reply) && reply.UserId == userId ? reply : null;

    public bool IsRunning(Guid conversationId) => _running.ContainsKey(conversationId);

    /// <summary>Replies being generated now, across every user (the system monitor shows it).</summary>
    public int RunningCount => _running.Count;
}

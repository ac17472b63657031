using System.Collections.Concurrent;
using System.Threading.Channels;

namespace Sutazai.Server.Agents;

/// <summary>
/// Something that happened in a run, as streamed (SSE, /ws/jarvis). Steps are stored before they are published;
/// tokens are the model's text as it arrives and are not stored one by one.
/// </summary>
public sealed record RunEvent(string Type, Guid RunId, Guid UserId, object Data);

/// <summary>
/// In-process fan-out of run events, and the cancellation handles of the runs this process executes. Watchers on
/// another node than the worker see stored steps by polling (see <see cref="AgentsApi"/>), so nothing depends on
/// the event reaching them.
/// </summary>
public sealed class RunHub
{
    private readonly ConcurrentDictionary<Guid, ConcurrentDictionary<Guid, Channel<RunEvent>>> _watchers = new();
    private readonly ConcurrentDictionary<Guid, CancellationTokenSource> _executing = new();

    /// <summary>Every event of every run of every user (the /ws/jarvis sockets filter by user).</summary>
    public event Action<RunEvent>? Published;

    public void Publish(RunEvent e)
    {
        if (_watchers.TryGetValue(e.RunId, out var watchers))
            foreach (var channel in watchers.Values) channel.Writer.TryWrite(e);
        Published?.Invoke(e);
    }

    /// <summary>Events of one run from now on; dispose the subscription to stop.</summary>
    public Subscription Watch(Guid runId)
    {
        var channel = Channel.CreateUnbounded<RunEvent>(new UnboundedChannelOptions { SingleReader = true });
        var id = Guid.NewGuid();
        _watchers.GetOrAdd(runId, _ => new()).TryAdd(id, channel);
        return new Subscription(channel.Reader, () =>
        {
            if (_watchers.TryGetValue(runId, out var w)) w.TryRemove(id, out _);
        });
    }

    public sealed class Subscription(ChannelReader<RunEvent> reader, Action dispose) : IDisposable
    {
        public ChannelReader<RunEvent> Reader { get; } = reader;

        public void Dispose() => dispose();
    }

    /// <summary>Registers a run this process executes, so a cancel request reaches it within the current step.</summary>
    public CancellationTokenSource Executing(Guid runId)
    {
        var cts = new CancellationTokenSource();
        _executing[runId] = cts;
        return cts;
    }

    public void Done(Guid runId, CancellationTokenSource cts) => _executing.TryRemove(new KeyValuePair<Guid, CancellationTokenSource>(runId, cts));

    /// <summary>Cancels the run if this process is executing it; true when it was.</summary>
    public bool Cancel(Guid runId)
    {
        if (!_executing.TryGetValue(runId, out var cts)) return false;
        try
        {
            cts.Cancel();
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
        return true;
    }
}

using Sutazai.Agents;
using System.Collections.Concurrent;
using System.Text.Json;
using System.Threading.Channels;
using Sutazai.Server.Hosting;

namespace Sutazai.Server.Agents;

/// <summary>
/// Fan-out of run events to this node's watchers (SSE, /ws/jarvis) and, through the <see cref="IClusterBus"/>
/// (Redis when configured), to every other node's — so a JARVIS socket sees steps and tokens of a run executed by a
/// worker elsewhere as they happen. Also the cancellation handles of the runs this process executes. Nothing depends
/// on an event arriving: steps are stored first, and run watchers re-read the store (see <see cref="AgentsApi"/>).
/// </summary>
public sealed class RunHub : IRunControl, IDisposable
{
    public const string Topic = "run-events";

    private readonly ConcurrentDictionary<Guid, ConcurrentDictionary<Guid, Channel<RunEvent>>> _watchers = new();
    private readonly ConcurrentDictionary<Guid, CancellationTokenSource> _executing = new();
    private readonly IClusterBus _bus;
    private readonly IDisposable _remote;

    private sealed record WireEvent(string Type, Guid RunId, Guid UserId, JsonElement Data);

    private static readonly JsonSerializerOptions Wire = new(JsonSerializerOptions.Web)
    {
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    public RunHub(IClusterBus bus)
    {
        _bus = bus;
        _remote = bus.Subscribe(Topic, payload =>
        {
            if (JsonSerializer.Deserialize<WireEvent>(payload, Wire) is { } e) Dispatch(new RunEvent(e.Type, e.RunId, e.UserId, e.Data));
        });
    }

    /// <summary>Every event of every run of every user, from this node and the others (the /ws/jarvis sockets filter by user).</summary>
    public event Action<RunEvent>? Published;

    public void Publish(RunEvent e)
    {
        Dispatch(e);
        if (_bus.ReachesOtherNodes) _bus.Publish(Topic, JsonSerializer.Serialize(new { e.Type, e.RunId, e.UserId, e.Data }, Wire));
    }

    private void Dispatch(RunEvent e)
    {
        if (_watchers.TryGetValue(e.RunId, out var watchers))
            foreach (var channel in watchers.Values) channel.Writer.TryWrite(e);
        Published?.Invoke(e);
    }

    public void Dispose() => _remote.Dispose();

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

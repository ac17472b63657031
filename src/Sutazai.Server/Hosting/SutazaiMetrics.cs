using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Sutazai.Server.Hosting;

/// <summary>SutazAI's own instruments; exported at /metrics with the ASP.NET Core, runtime and database meters.</summary>
public sealed class SutazaiMetrics
{
    public const string MeterName = "Sutazai";

    private readonly Counter<long> _logins;
    private readonly Counter<long> _lockouts;
    private readonly Counter<long> _inferenceRequests;
    private readonly Counter<long> _inferenceTokens;
    private readonly UpDownCounter<long> _inferenceActive;
    private readonly Histogram<double> _timeToFirstToken;
    private readonly Histogram<double> _timePerOutputToken;
    private readonly Counter<long> _tasksProcessed;
    private readonly Counter<long> _tasksFailed;
    private readonly Histogram<double> _taskDuration;
    private IReadOnlyDictionary<string, long> _taskQueueDepth = new Dictionary<string, long>();
    private IReadOnlyDictionary<string, double> _health = new Dictionary<string, double>();

    public SutazaiMetrics(IMeterFactory meterFactory, Microsoft.Extensions.Options.IOptions<Configuration.SutazaiOptions> options)
    {
        var meter = meterFactory.Create(MeterName);
        _logins = meter.CreateCounter<long>("sutazai.auth.logins", unit: "{attempt}", description: "Login attempts by result.");
        _lockouts = meter.CreateCounter<long>("sutazai.auth.lockouts", unit: "{lockout}", description: "Accounts locked after repeated wrong passwords.");
        _inferenceRequests = meter.CreateCounter<long>("sutazai.inference.requests", unit: "{request}", description: "Generation requests by model and result (ok, error, cancelled).");
        _inferenceTokens = meter.CreateCounter<long>("sutazai.inference.tokens", unit: "{token}", description: "Tokens generated, by model.");
        _inferenceActive = meter.CreateUpDownCounter<long>("sutazai.inference.active", unit: "{request}", description: "Generation requests queued or running.");
        // The OpenTelemetry GenAI server metrics, with the conventions' names, units, attributes and bucket advice.
        _timeToFirstToken = meter.CreateHistogram<double>("gen_ai.server.time_to_first_token", unit: "s", description: "Time from request to first generated text.",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0] });
        _timePerOutputToken = meter.CreateHistogram<double>("gen_ai.server.time_per_output_token", unit: "s", description: "Time per generated token after the first.",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5] });
        _tasksProcessed = meter.CreateCounter<long>("sutazai.tasks.processed", unit: "{delivery}", description: "Task and event deliveries settled, by queue, kind and result (succeeded, retried, dead, released).");
        _tasksFailed = meter.CreateCounter<long>("sutazai.tasks.failed", unit: "{delivery}", description: "Task and event deliveries whose handler threw, by queue and kind.");
        _taskDuration = meter.CreateHistogram<double>("sutazai.tasks.duration", unit: "s", description: "Time a delivery took from dispatch to settling.");
        meter.CreateObservableGauge("sutazai.tasks.queue_depth", () => _taskQueueDepth.Select(p => new Measurement<long>(p.Value, new KeyValuePair<string, object?>("status", p.Key))),
            unit: "{message}", description: "Messages in the task queue by status (refreshed every 15 s by the worker).");
        meter.CreateObservableGauge("sutazai.health.status", () => _health.Select(p => new Measurement<double>(p.Value, new KeyValuePair<string, object?>("check", p.Key))),
            unit: "{status}", description: "Readiness by check (and \"all\"): 1 healthy, 0.5 degraded, 0 unhealthy (refreshed every 30 s).");
        var dataPath = options.Value.DataPath;
        meter.CreateObservableGauge("sutazai.storage.free", () => Disk(dataPath, d => d.AvailableFreeSpace), unit: "By", description: "Free space on the data directory's file system.");
        meter.CreateObservableGauge("sutazai.storage.size", () => Disk(dataPath, d => d.TotalSize), unit: "By", description: "Size of the data directory's file system.");
    }

    private static IEnumerable<Measurement<long>> Disk(string path, Func<DriveInfo, long> read)
    {
        long value;
        try
        {
            value = read(new DriveInfo(Path.GetFullPath(path)));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            yield break; // not created yet, or unreadable: no sample rather than a wrong one
        }
        yield return new Measurement<long>(value);
    }

    /// <summary>The latest readiness report, by check name plus "all".</summary>
    public void SetHealth(IReadOnlyDictionary<string, double> byCheck) => _health = byCheck;

    /// <summary>result: success | invalid_credentials | locked | inactive.</summary>
    public void Login(string result) => _logins.Add(1, new KeyValuePair<string, object?>("result", result));

    public void Lockout() => _lockouts.Add(1);

    private int _activeGenerations;

    /// <summary>Generation requests queued or running on this node now (what <c>sutazai.inference.active</c> adds up).</summary>
    public int ActiveGenerations => Volatile.Read(ref _activeGenerations);

    /// <summary>Tasks waiting on the queue at this node's worker's last count; null when the node runs no worker.</summary>
    public long? QueuedTasks => _taskQueueDepth.Count == 0 ? null : _taskQueueDepth.GetValueOrDefault("queued");

    public void InferenceStarted(in TagList tags)
    {
        Interlocked.Increment(ref _activeGenerations);
        _inferenceActive.Add(1, tags);
    }

    public void InferenceFinished(string result, int tokens, in TagList tags)
    {
        Interlocked.Decrement(ref _activeGenerations);
        _inferenceActive.Add(-1, tags);
        var withResult = tags;
        withResult.Add("result", result);
        _inferenceRequests.Add(1, withResult);
        if (tokens > 0) _inferenceTokens.Add(tokens, tags);
    }

    public void TaskProcessed(string queue, string kind, string result, double seconds)
    {
        var tags = new TagList { { "queue", queue }, { "kind", kind }, { "result", result } };
        _tasksProcessed.Add(1, tags);
        if (seconds > 0) _taskDuration.Record(seconds, tags);
    }

    public void TaskFailed(string queue, string kind) =>
        _tasksFailed.Add(1, new KeyValuePair<string, object?>("queue", queue), new KeyValuePair<string, object?>("kind", kind));

    public void SetTaskQueueDepth(IReadOnlyDictionary<string, long> byStatus) => _taskQueueDepth = byStatus;

    /// <summary>The GenAI attributes of one generation, for the <c>gen_ai.server.*</c> histograms.</summary>
    public static TagList GenAiTags(string model, string provider) => new()
    {
        { "gen_ai.operation.name", "chat" }, { "gen_ai.request.model", model }, { "gen_ai.provider.name", provider },
    };

    public void TimeToFirstToken(double seconds, in TagList genAiTags) => _timeToFirstToken.Record(seconds, genAiTags);

    /// <summary>Decode time per token after the first: (end − first token) / (output tokens − 1); nothing for one token.</summary>
    public void TimePerOutputToken(double secondsAfterFirst, int outputTokens, in TagList genAiTags)
    {
        if (outputTokens > 1) _timePerOutputToken.Record(secondsAfterFirst / (outputTokens - 1), genAiTags);
    }
}

using System.Diagnostics.Metrics;

namespace Sutazai.Server.Hosting;

/// <summary>One point of the system monitor's charts: rates over the interval that ended at <see cref="At"/>.</summary>
public sealed record MonitorSample(DateTimeOffset At, double TokensPerSecond, double RequestsPerSecond, long QueueDepth, long WorkingSetBytes, long GcHeapBytes);

/// <summary>
/// Reads the server's own instruments every <see cref="Interval"/> into a ring buffer of the last
/// <see cref="Window"/> for the admin system monitor: generated tokens (<c>sutazai.inference.tokens</c>), HTTP requests
/// (ASP.NET Core's <c>http.server.request.duration</c>, one measurement per request), the task queue depth gauge
/// (<c>sutazai.tasks.queue_depth</c>, queued + leased) and the process's working set and GC heap. Only instruments of
/// this host's meter factory are read, so several hosts in one process (tests) do not mix.
/// </summary>
public sealed class MonitorSampler : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(5);
    public static int Capacity => (int)(Window / Interval);

    private const string AspNetCoreHostingMeter = "Microsoft.AspNetCore.Hosting";
    private const string RequestDurationInstrument = "http.server.request.duration";
    private const string TokensInstrument = "sutazai.inference.tokens";
    private const string QueueDepthInstrument = "sutazai.tasks.queue_depth";
    private static readonly HashSet<string> WaitingStatuses = ["queued", "leased"];

    private readonly IMeterFactory _meterFactory;
    private readonly TimeProvider _time;
    private readonly MeterListener _listener = new();
    private readonly Lock _gate = new();
    private readonly MonitorSample[] _ring = new MonitorSample[Capacity];
    private int _next;
    private int _count;
    private long _tokens;
    private long _requests;
    private long _queueDepthAccumulator;
    private long _lastTokens;
    private long _lastRequests;
    private DateTimeOffset _lastAt;

    public MonitorSampler(IMeterFactory meterFactory, TimeProvider time, SutazaiMetrics metrics)
    {
        // metrics: resolved so the Sutazai meter exists before the listener starts (it is also picked up if published later).
        _ = metrics;
        _meterFactory = meterFactory;
        _time = time;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (!ReferenceEquals(instrument.Meter.Scope, _meterFactory)) return;
            if ((instrument.Meter.Name == SutazaiMetrics.MeterName && instrument.Name is TokensInstrument or QueueDepthInstrument)
                || (instrument.Meter.Name == AspNetCoreHostingMeter && instrument.Name == RequestDurationInstrument))
                listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            if (instrument.Name == TokensInstrument) Interlocked.Add(ref _tokens, value);
            else if (instrument.Name == QueueDepthInstrument && IsWaiting(tags)) Interlocked.Add(ref _queueDepthAccumulator, value);
        });
        _listener.SetMeasurementEventCallback<double>((instrument, _, _, _) =>
        {
            if (instrument.Name == RequestDurationInstrument) Interlocked.Increment(ref _requests);
        });
        _listener.Start();
        _lastAt = time.GetUtcNow();
    }

    private static bool IsWaiting(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        foreach (var tag in tags)
            if (tag.Key == "status" && tag.Value is string s && WaitingStatuses.Contains(s)) return true;
        return false;
    }

    /// <summary>The samples of the last <see cref="Window"/>, oldest first.</summary>
    public IReadOnlyList<MonitorSample> Samples()
    {
        lock (_gate)
        {
            var result = new MonitorSample[_count];
            var start = (_next - _count + _ring.Length) % _ring.Length;
            for (var i = 0; i < _count; i++) result[i] = _ring[(start + i) % _ring.Length];
            return result;
        }
    }

    /// <summary>Takes one sample now (the hosted loop calls this every <see cref="Interval"/>).</summary>
    public MonitorSample SampleNow()
    {
        var now = _time.GetUtcNow();
        Interlocked.Exchange(ref _queueDepthAccumulator, 0);
        _listener.RecordObservableInstruments();
        var queueDepth = Interlocked.Read(ref _queueDepthAccumulator);
        var tokens = Interlocked.Read(ref _tokens);
        var requests = Interlocked.Read(ref _requests);
        MonitorSample sample;
        lock (_gate)
        {
            var seconds = Math.Max((now - _lastAt).TotalSeconds, 0.001);
            sample = new MonitorSample(now, (tokens - _lastTokens) / seconds, (requests - _lastRequests) / seconds, queueDepth,
                Environment.WorkingSet, GC.GetGCMemoryInfo().HeapSizeBytes);
            _lastTokens = tokens;
            _lastRequests = requests;
            _lastAt = now;
            _ring[_next] = sample;
            _next = (_next + 1) % _ring.Length;
            _count = Math.Min(_count + 1, _ring.Length);
        }
        return sample;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken)) SampleNow();
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // shutting down
        }
    }

    public override void Dispose()
    {
        _listener.Dispose();
        base.Dispose();
    }
}

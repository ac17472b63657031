using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Sutazai.Inference.Pull;

public enum PullStatus { Queued, Downloading, Verifying, Completed, Failed }

/// <summary>A point-in-time view of one pull, as the API and the CLI show it.</summary>
public sealed record PullSnapshot(
    string Id,
    string Source,
    PullStatus Status,
    long Bytes,
    long? TotalBytes,
    double BytesPerSecond,
    string? Error,
    string? ModelId,
    DateTime CreatedAt,
    DateTime? FinishedAt)
{
    public bool IsFinished => Status is PullStatus.Completed or PullStatus.Failed;
}

/// <summary>Pulls something Ollama itself fetches; implemented by the Ollama provider.</summary>
public interface IOllamaPuller
{
    /// <summary>True when an Ollama server is connected now (the connection can change at run time).</summary>
    Task<bool> IsConfiguredAsync(CancellationToken ct);

    Task PullAsync(string model, IProgress<DownloadProgress> progress, CancellationToken ct);
}

/// <summary>
/// Runs model pulls in the background (at most <see cref="PullOptions.MaxConcurrent"/> at once) and keeps their state
/// for status queries and progress streams. The API and <c>sutazai pull</c> both start pulls here.
/// </summary>
public sealed class PullService(
    ModelDownloader downloader,
    IOptionsMonitor<InferenceOptions> options,
    TimeProvider time,
    ILogger<PullService> logger,
    IEnumerable<IOllamaPuller> ollama,
    ModelCatalog catalog) : IDisposable
{
    private readonly ConcurrentDictionary<string, Job> _jobs = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _slots = new(Math.Max(1, options.CurrentValue.Pull.MaxConcurrent));
    private readonly CancellationTokenSource _stopping = new();
    private readonly IOllamaPuller? _ollama = ollama.FirstOrDefault();

    /// <summary>Raised with the model's id when a pull completes (the host announces it to the other nodes).</summary>
    public event Action<string>? Pulled;

    private sealed class Job(PullSnapshot initial)
    {
        private readonly Lock _gate = new();
        private readonly List<Channel<PullSnapshot>> _watchers = [];

        public PullSnapshot Current { get; private set; } = initial;

        public Task Completion { get; set; } = Task.CompletedTask;

        public void Update(Func<PullSnapshot, PullSnapshot> change)
        {
            lock (_gate)
            {
                Current = change(Current);
                foreach (var watcher in _watchers)
                {
                    watcher.Writer.TryWrite(Current);
                    if (Current.IsFinished) watcher.Writer.TryComplete();
                }
            }
        }

        public ChannelReader<PullSnapshot> Watch()
        {
            var channel = Channel.CreateBounded<PullSnapshot>(new BoundedChannelOptions(64) { FullMode = BoundedChannelFullMode.DropOldest });
            lock (_gate)
            {
                channel.Writer.TryWrite(Current);
                if (Current.IsFinished) channel.Writer.TryComplete();
                else _watchers.Add(channel);
            }
            return channel.Reader;
        }
    }

    /// <summary>Validates the source and queues the pull. Throws <see cref="FormatException"/> for a bad source.</summary>
    public async Task<PullSnapshot> StartAsync(string? source, CancellationToken ct = default)
    {
        var parsed = ModelSource.Parse(source, new Uri(options.CurrentValue.Pull.HuggingFaceBaseUrl));
        if (parsed.Kind == ModelSourceKind.Ollama && (_ollama is null || !await _ollama.IsConfiguredAsync(ct)))
            throw new FormatException($"'{parsed.Reference}' looks like an Ollama model name, but no Ollama server is connected (connect one in the web UI, with PUT /api/v1/admin/ollama, or Sutazai:Inference:Ollama:Url). Use hf:owner/repo/file.gguf or an https:// URL to download a GGUF file.");
        var id = Guid.NewGuid().ToString("N");
        var job = new Job(new PullSnapshot(id, parsed.Reference, PullStatus.Queued, 0, null, 0, null, null, time.GetUtcNow().UtcDateTime, null));
        _jobs[id] = job;
        job.Completion = Task.Run(() => RunAsync(job, parsed, _stopping.Token));
        return job.Current;
    }

    public PullSnapshot? Get(string id) => _jobs.TryGetValue(id, out var job) ? job.Current : null;

    public IReadOnlyList<PullSnapshot> List() => _jobs.Values.Select(j => j.Current).OrderByDescending(s => s.CreatedAt).ToList();

    /// <summary>Snapshots of one pull as it changes, ending when it completes or fails; null for an unknown id.</summary>
    public IAsyncEnumerable<PullSnapshot>? WatchAsync(string id, CancellationToken ct) =>
        _jobs.TryGetValue(id, out var job) ? job.Watch().ReadAllAsync(ct) : null;

    public Task WaitAsync(string id) => _jobs.TryGetValue(id, out var job) ? job.Completion : Task.CompletedTask;

    private async Task RunAsync(Job job, ModelSource source, CancellationToken ct)
    {
        var progress = new Progress(job);
        try
        {
            await _slots.WaitAsync(ct);
            try
            {
                job.Update(s => s with { Status = PullStatus.Downloading });
                string modelId;
                if (source.Kind == ModelSourceKind.Ollama)
                {
                    await _ollama!.PullAsync(source.Reference, progress, ct);
                    modelId = source.Reference;
                }
                else
                {
                    var current = options.CurrentValue;
                    // The Hugging Face token goes to the hub's own host only (hf: references and https URLs on it).
                    var hub = new Uri(current.Pull.HuggingFaceBaseUrl);
                    var toHub = string.Equals(source.DownloadUrl!.Authority, hub.Authority, StringComparison.OrdinalIgnoreCase) && source.DownloadUrl.Scheme == hub.Scheme;
                    var result = await downloader.DownloadAsync(
                        new DownloadRequest(source.DownloadUrl!, current.LlamaCpp.ModelsDir, source.FileName!) { BearerToken = toHub ? current.Pull.EffectiveHuggingFaceToken : null },
                        progress, ct);
                    modelId = Path.GetFileNameWithoutExtension(result.FilePath);
                    job.Update(s => s with { Bytes = result.Size, TotalBytes = result.Size });
                    logger.LogInformation("Pulled {Source} to {Path} ({Size} bytes, sha256 {Sha})", source.Reference, result.FilePath, result.Size, result.Sha256);
                }
                catalog.Invalidate();
                job.Update(s => s with { Status = PullStatus.Completed, ModelId = modelId, BytesPerSecond = 0, FinishedAt = time.GetUtcNow().UtcDateTime });
                Pulled?.Invoke(modelId);
            }
            finally
            {
                _slots.Release();
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            var message = ex is OperationCanceledException ? "The server stopped before the pull finished; pull again to resume." : ex.Message;
            logger.LogWarning("Pull of {Source} failed: {Message}", source.Reference, message);
            job.Update(s => s with { Status = PullStatus.Failed, Error = message, BytesPerSecond = 0, FinishedAt = time.GetUtcNow().UtcDateTime });
        }
    }

    private sealed class Progress(Job job) : IProgress<DownloadProgress>
    {
        public void Report(DownloadProgress value) => job.Update(s => s with
        {
            Status = value.Status == DownloadStatus.Verifying ? PullStatus.Verifying : PullStatus.Downloading,
            Bytes = value.Bytes,
            TotalBytes = value.TotalBytes,
            BytesPerSecond = value.BytesPerSecond,
        });
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _stopping.Dispose();
        _slots.Dispose();
    }
}

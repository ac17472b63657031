using System.Diagnostics;
using System.Threading.Channels;
using LLama;
using LLama.Batched;
using LLama.Common;
using LLama.Native;
using LLama.Sampling;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

namespace Sutazai.Inference.LlamaCpp;

/// <summary>
/// One loaded GGUF model serving many requests at once. A single decode loop owns the llama.cpp context: every step
/// it admits queued requests into free slots (continuous batching — a new request joins the running decode instead
/// of waiting for it), runs one batched llama_decode for all of them, samples each, and streams the text out.
/// Finished conversations stay in a small prefix cache so a follow-up request that starts with the same tokens (the
/// next turn of a chat) forks that KV state and evaluates only the new tokens.
/// </summary>
public sealed class LlamaEngine : IAsyncDisposable
{
    private readonly LLamaWeights _weights;
    private readonly BatchedExecutor _executor;
    private readonly Channel<GenerationJob> _queue = Channel.CreateUnbounded<GenerationJob>(new UnboundedChannelOptions { SingleReader = true });
    private readonly List<CacheEntry> _cache = [];
    private readonly List<Conversation> _draining = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _loop;
    private readonly ILogger _logger;
    private readonly int _slots;
    private readonly int _cacheEntries;
    private int _active;
    private long _lastUsed = Stopwatch.GetTimestamp();

    private LlamaEngine(string modelId, LLamaWeights weights, ModelParams parameters, LlamaCppOptions options, int sequenceLimit, ILogger logger)
    {
        ModelId = modelId;
        _weights = weights;
        _logger = logger;
        _slots = Math.Max(1, options.ParallelSlots);
        _cacheEntries = Math.Max(0, options.PrefixCacheEntries);
        SequenceLimit = sequenceLimit;
        _executor = new BatchedExecutor(weights, parameters);
        _loop = Task.Run(RunLoopAsync);
    }

    public string ModelId { get; }

    /// <summary>Most tokens one conversation may hold (prompt + reply).</summary>
    public int SequenceLimit { get; }

    public int ActiveRequests => Volatile.Read(ref _active);

    public TimeSpan IdleFor => ActiveRequests > 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(Interlocked.Read(ref _lastUsed));

    public LLamaWeights Weights => _weights;

    public static async Task<LlamaEngine> LoadAsync(string modelId, string path, LlamaCppOptions options, int trainedContext, ILogger logger, CancellationToken ct)
    {
        var threads = options.Threads > 0 ? options.Threads : Environment.ProcessorCount;
        var contextSize = Math.Max(256, options.ContextSize);
        var parameters = new ModelParams(path)
        {
            ContextSize = (uint)contextSize,
            BatchSize = (uint)Math.Max(32, options.BatchSize),
            UBatchSize = (uint)Math.Max(32, options.BatchSize),
            SeqMax = (uint)(Math.Max(1, options.ParallelSlots) + Math.Max(0, options.PrefixCacheEntries) + 1),
            KVUnified = true,
            Threads = threads,
            BatchThreads = threads,
            GpuLayerCount = 0,
        };
        var weights = await LLamaWeights.LoadFromFileAsync(parameters, ct);
        var limit = trainedContext > 0 ? Math.Min(trainedContext, contextSize) : contextSize;
        return new LlamaEngine(modelId, weights, parameters, options, limit, logger);
    }

    /// <summary>Tokenizes text the way this model expects (BOS when the model wants one; special tokens parsed).</summary>
    public LLamaToken[] Tokenize(string text, bool addBos) =>
        _executor.Context.Tokenize(text, addBos && _weights.Vocab.ShouldAddBOS, special: true);

    /// <summary>Queues a request and streams its events until it finishes or <paramref name="ct"/> cancels it.</summary>
    public async IAsyncEnumerable<EngineEvent> GenerateAsync(
        IReadOnlyList<LLamaToken> prompt, SamplingSettings sampling, int maxTokens, IReadOnlyList<string> stop,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        if (prompt.Count == 0) throw new ArgumentException("The prompt is empty.", nameof(prompt));
        if (prompt.Count >= SequenceLimit)
            throw new InferenceUnavailableException($"The prompt is {prompt.Count} tokens but model '{ModelId}' holds at most {SequenceLimit} per conversation. Shorten it.");
        var job = new GenerationJob(prompt, sampling, maxTokens, stop, ct);
        Interlocked.Increment(ref _active);
        try
        {
            if (!_queue.Writer.TryWrite(job)) throw new InferenceUnavailableException($"Model '{ModelId}' is unloading.");
            // Reading stops at once on cancellation; the loop sees the same token at its next step and frees the slot.
            await foreach (var item in job.Output.Reader.ReadAllAsync(ct))
            {
                yield return item;
                if (item is EngineEvent.Finished or EngineEvent.Failed) yield break;
            }
        }
        finally
        {
            Interlocked.Decrement(ref _active);
            Interlocked.Exchange(ref _lastUsed, Stopwatch.GetTimestamp());
        }
    }

    private sealed class ActiveJob(GenerationJob job, Conversation conversation, List<LLamaToken> tokens, int cachedTokens, CacheEntry? source, ISamplingPipeline pipeline, StreamingTokenDecoder decoder)
    {
        public GenerationJob Job { get; } = job;
        public Conversation Conversation { get; } = conversation;
        public List<LLamaToken> Tokens { get; } = tokens;
        public int CachedTokens { get; } = cachedTokens;
        public CacheEntry? Source { get; } = source;
        public ISamplingPipeline Pipeline { get; } = pipeline;
        public StreamingTokenDecoder Decoder { get; } = decoder;
        public StopSequenceFilter Filter { get; } = new(job.Stop);
        public long AdmittedAt { get; } = Stopwatch.GetTimestamp();
        public long FirstTokenAt { get; set; }
        public int Generated { get; set; }
    }

    private sealed class CacheEntry(Conversation conversation, List<LLamaToken> tokens)
    {
        public Conversation Conversation { get; } = conversation;
        public List<LLamaToken> Tokens { get; } = tokens;
        public long LastUsed { get; set; } = Stopwatch.GetTimestamp();
    }

    private async Task RunLoopAsync()
    {
        var active = new List<ActiveJob>();
        var stopping = _stopping.Token;
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                while (active.Count < _slots && _queue.Reader.TryRead(out var job))
                {
                    if (TryAdmit(job) is { } admitted) active.Add(admitted);
                }
                foreach (var cancelled in active.Where(a => a.Job.Cancellation.IsCancellationRequested).ToList())
                {
                    active.Remove(cancelled);
                    Finish(cancelled, ChatFinishReason.Stop, keep: false);
                }
                ReleaseDrained();
                if (active.Count == 0)
                {
                    if (_draining.Count == 0 && !await _queue.Reader.WaitToReadAsync(stopping)) break;
                    if (_draining.Count > 0) await InferAsync(stopping);
                    continue;
                }

                if (!await InferAsync(stopping))
                {
                    // Nothing more can be evicted and the KV cache is full: the longest conversation gives way.
                    var victim = active.MaxBy(a => a.Conversation.TokenCount)!;
                    active.Remove(victim);
                    Fail(victim, new InferenceUnavailableException(
                        $"Model '{ModelId}' ran out of context cells ({_executor.Context.ContextSize}); raise Sutazai:Inference:LlamaCpp:ContextSize or lower ParallelSlots."));
                    continue;
                }

                foreach (var job in active.ToList())
                {
                    if (!job.Conversation.RequiresSampling) continue;
                    if (Step(job) is { } reason)
                    {
                        active.Remove(job);
                        Finish(job, reason, keep: true);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Unloading: fall through to fail whatever is still running.
        }
        catch (Exception ex)
        {
            _logger.LogError(ex, "Decode loop of model {Model} failed", ModelId);
            foreach (var job in active) Fail(job, new InferenceUnavailableException($"Model '{ModelId}' failed while generating: {ex.Message}", ex));
            active.Clear();
        }
        foreach (var job in active) Fail(job, new InferenceUnavailableException($"Model '{ModelId}' was unloaded."));
        while (_queue.Reader.TryRead(out var queued))
            queued.Output.Writer.TryWrite(new EngineEvent.Failed(new InferenceUnavailableException($"Model '{ModelId}' was unloaded.")));
    }

    /// <summary>Runs one batched decode; on a full KV cache evicts cached prefixes and retries. False when nothing helps.</summary>
    private async Task<bool> InferAsync(CancellationToken stopping)
    {
        while (true)
        {
            var result = await _executor.Infer(stopping);
            if (result == DecodeResult.Ok) return true;
            if (result == DecodeResult.NoKvSlot && EvictOldest()) continue;
            if (result == DecodeResult.NoKvSlot) return false;
            throw new InvalidOperationException($"llama_decode failed: {result}");
        }
    }

    private ActiveJob? TryAdmit(GenerationJob job)
    {
        if (job.Cancellation.IsCancellationRequested)
        {
            job.Output.Writer.TryWrite(new EngineEvent.Failed(new OperationCanceledException(job.Cancellation)));
            return null;
        }
        try
        {
            var prompt = job.PromptTokens;
            CacheEntry? best = null;
            var common = 0;
            foreach (var entry in _cache)
            {
                var shared = CommonPrefix(entry.Tokens, prompt);
                if (shared > common)
                {
                    common = shared;
                    best = entry;
                }
            }

            Conversation conversation;
            var reused = 0;
            if (best is not null)
            {
                // Never reuse the whole prompt: the last token must be evaluated to produce fresh logits.
                reused = Math.Min(common, prompt.Count - 1);
                conversation = best.Conversation.Fork();
                var rewind = best.Tokens.Count - reused;
                if (rewind > 0) conversation.Rewind(rewind);
                best.LastUsed = Stopwatch.GetTimestamp();
            }
            else
            {
                conversation = _executor.Create();
            }

            var rest = new LLamaToken[prompt.Count - reused];
            for (var i = 0; i < rest.Length; i++) rest[i] = prompt[reused + i];
            conversation.Prompt(rest.AsSpan());
            var tokens = new List<LLamaToken>(prompt.Count + job.MaxTokens);
            tokens.AddRange(prompt);
            ISamplingPipeline pipeline = job.Sampling.IsGreedy
                ? new GreedySamplingPipeline()
                : new DefaultSamplingPipeline
                {
                    Temperature = job.Sampling.Temperature,
                    TopP = job.Sampling.TopP,
                    TopK = job.Sampling.TopK,
                    Seed = job.Sampling.Seed ?? (uint)Random.Shared.Next(),
                };
            return new ActiveJob(job, conversation, tokens, reused, best, pipeline, new StreamingTokenDecoder(_executor.Context));
        }
        catch (Exception ex)
        {
            job.Output.Writer.TryWrite(new EngineEvent.Failed(ex));
            return null;
        }
    }

    /// <summary>Samples one token; returns the finish reason when the request is done.</summary>
    private ChatFinishReason? Step(ActiveJob job)
    {
        var token = job.Conversation.Sample(job.Pipeline);
        if (job.FirstTokenAt == 0) job.FirstTokenAt = Stopwatch.GetTimestamp();
        if (token.IsEndOfGeneration(_weights.Vocab)) return ChatFinishReason.Stop;

        job.Generated++;
        job.Decoder.Add(token);
        var text = job.Filter.Push(job.Decoder.Read());
        if (text.Length > 0) job.Job.Output.Writer.TryWrite(new EngineEvent.Text(text));
        if (job.Filter.Stopped) return ChatFinishReason.Stop;
        if (job.Generated >= job.Job.MaxTokens) return ChatFinishReason.Length;
        if (job.Conversation.TokenCount + 1 >= SequenceLimit) return ChatFinishReason.Length;

        job.Conversation.Prompt(token);
        job.Tokens.Add(token);
        return null;
    }

    private void Finish(ActiveJob job, ChatFinishReason reason, bool keep)
    {
        var rest = job.Filter.Flush() + (job.Filter.Stopped ? "" : job.Decoder.Read());
        if (rest.Length > 0 && keep) job.Job.Output.Writer.TryWrite(new EngineEvent.Text(rest));
        var now = Stopwatch.GetTimestamp();
        var first = job.FirstTokenAt == 0 ? now : job.FirstTokenAt;
        var stats = new GenerationStats(
            job.Job.PromptTokens.Count, job.CachedTokens, job.Generated,
            Stopwatch.GetElapsedTime(job.Job.EnqueuedAt, job.AdmittedAt).TotalMilliseconds,
            Stopwatch.GetElapsedTime(job.AdmittedAt, first).TotalMilliseconds,
            Stopwatch.GetElapsedTime(first, now).TotalMilliseconds);
        job.Job.Output.Writer.TryWrite(new EngineEvent.Finished(reason, stats));
        job.Pipeline.Dispose();
        Retire(job, keep);
    }

    private void Fail(ActiveJob job, Exception error)
    {
        job.Job.Output.Writer.TryWrite(new EngineEvent.Failed(error));
        job.Pipeline.Dispose();
        Retire(job, keep: false);
    }

    /// <summary>Keeps a finished conversation for prefix reuse, or disposes it.</summary>
    private void Retire(ActiveJob job, bool keep)
    {
        var conversation = job.Conversation;
        if (conversation.RequiresInference)
        {
            // Its tokens are queued in a batch; dispose it once that batch has run.
            _draining.Add(conversation);
            return;
        }
        if (!keep || _cacheEntries == 0 || job.Tokens.Count < 2)
        {
            conversation.Dispose();
            return;
        }
        // The sampled last token was never evaluated, so the KV cache holds exactly job.Tokens.
        if (job.Source is { } source && _cache.Contains(source) && CommonPrefix(source.Tokens, job.Tokens) == source.Tokens.Count)
        {
            _cache.Remove(source);
            source.Conversation.Dispose();
        }
        while (_cache.Count >= _cacheEntries) EvictOldest();
        _cache.Add(new CacheEntry(conversation, job.Tokens));
    }

    private void ReleaseDrained()
    {
        for (var i = _draining.Count - 1; i >= 0; i--)
        {
            if (_draining[i].RequiresInference) continue;
            _draining[i].Dispose();
            _draining.RemoveAt(i);
        }
    }

    private bool EvictOldest()
    {
        if (_cache.Count == 0) return false;
        var oldest = _cache.MinBy(e => e.LastUsed)!;
        _cache.Remove(oldest);
        oldest.Conversation.Dispose();
        return true;
    }

    private static int CommonPrefix(IReadOnlyList<LLamaToken> a, IReadOnlyList<LLamaToken> b)
    {
        var n = Math.Min(a.Count, b.Count);
        var i = 0;
        while (i < n && a[i] == b[i]) i++;
        return i;
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _stopping.CancelAsync();
        try
        {
            await _loop;
        }
        catch (OperationCanceledException)
        {
            // The loop ends by cancellation when unloading.
        }
        foreach (var entry in _cache) entry.Conversation.Dispose();
        _cache.Clear();
        foreach (var conversation in _draining) conversation.Dispose();
        _draining.Clear();
        _executor.Dispose();
        _weights.Dispose();
        _stopping.Dispose();
    }
}

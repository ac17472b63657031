using System.Diagnostics;
using System.Threading.Channels;
using LLama;
using LLama.Common;
using LLama.Native;
using LLama.Sampling;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

namespace Sutazai.Inference.LlamaCpp;

/// <summary>
/// One loaded GGUF model serving many requests at once. A single dedicated thread owns the llama.cpp context and
/// calls <c>llama_decode</c> itself, so llama.cpp's OpenMP team always has the same master thread (LLamaSharp's async
/// executors hop across thread-pool threads, which on a busy server creates competing, spinning thread teams).
/// Each step the loop admits queued requests into free sequence slots (continuous batching: a new request's prompt
/// is read in the same batches as the running requests' next tokens), decodes one batch for all of them, samples
/// each, and streams the text out. Finished sequences stay in a prefix cache: a request that starts with the same
/// tokens (the next turn of a chat) copies that KV prefix into its own sequence and reads only the new tokens.
/// </summary>
public sealed class LlamaEngine : IAsyncDisposable
{
    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;
    private readonly Channel<GenerationJob> _queue = Channel.CreateUnbounded<GenerationJob>(new UnboundedChannelOptions { SingleReader = true });
    private readonly List<CacheEntry> _cache = [];
    private readonly Stack<int> _freeSequences = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _loopDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ILogger _logger;
    private readonly int _slots;
    private readonly int _cacheEntries;
    private readonly int _batchSize;
    private readonly ModelParams _parameters;
    private readonly SemaphoreSlim _embedLock = new(1, 1);
    private LLamaEmbedder? _embedder;
    private bool _disposed;
    private int _active;
    private long _lastUsed = Stopwatch.GetTimestamp();

    private LlamaEngine(string modelId, LLamaWeights weights, ModelParams parameters, LlamaCppOptions options, int sequenceLimit, ILogger logger)
    {
        ModelId = modelId;
        _weights = weights;
        _parameters = parameters;
        _logger = logger;
        _slots = Math.Max(1, options.ParallelSlots);
        _cacheEntries = Math.Max(0, options.PrefixCacheEntries);
        _batchSize = (int)parameters.BatchSize;
        SequenceLimit = sequenceLimit;
        _context = weights.CreateContext(parameters, logger);
        for (var id = (int)parameters.SeqMax - 1; id >= 0; id--) _freeSequences.Push(id);
        var thread = new Thread(RunLoop) { IsBackground = true, Name = $"llama-decode {modelId}" };
        thread.Start();
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
            SeqMax = (uint)(Math.Max(1, options.ParallelSlots) + Math.Max(0, options.PrefixCacheEntries)),
            KVUnified = true,
            Threads = threads,
            BatchThreads = threads,
            GpuLayerCount = 0,
            FlashAttention = options.FlashAttention,
        };
        var weights = await LLamaWeights.LoadFromFileAsync(parameters, ct);
        var limit = trainedContext > 0 ? Math.Min(trainedContext, contextSize) : contextSize;
        return new LlamaEngine(modelId, weights, parameters, options, limit, logger);
    }

    /// <summary>Tokenizes text the way this model expects (BOS when the model wants one; special tokens parsed).</summary>
    public LLamaToken[] Tokenize(string text, bool addBos) =>
        _context.Tokenize(text, addBos && _weights.Vocab.ShouldAddBOS, special: true);

    /// <summary>Most tokens one embedding input may have (the embedding context reads each input in one batch).</summary>
    public int EmbeddingTokenLimit => Math.Min(SequenceLimit, MaxEmbeddingContext);

    private const int MaxEmbeddingContext = 2048;

    /// <summary>
    /// Embedding vectors (mean-pooled over the input's tokens, L2-normalized), one per input. They come from a second
    /// context with <c>Embeddings = true</c>, created on first use and disposed with the engine; calls run one at a time.
    /// </summary>
    public async Task<EmbeddingResult> EmbedAsync(IReadOnlyList<string> inputs, CancellationToken ct)
    {
        Interlocked.Increment(ref _active);
        try
        {
            await _embedLock.WaitAsync(ct);
            try
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                var limit = EmbeddingTokenLimit;
                var counts = new int[inputs.Count];
                for (var i = 0; i < inputs.Count; i++)
                {
                    counts[i] = Tokenize(inputs[i], addBos: true).Length;
                    if (counts[i] > limit)
                        throw new InvalidInferenceInputException($"Input {i} is {counts[i]} tokens but model '{ModelId}' embeds at most {limit} tokens per input. Shorten it.");
                }
                _embedder ??= CreateEmbedder(limit);
                var vectors = new List<float[]>(inputs.Count);
                foreach (var input in inputs)
                {
                    var result = await _embedder.GetEmbeddings(input, ct);
                    if (result.Count == 0 || result[0].Length == 0)
                        throw new InferenceUnavailableException($"Model '{ModelId}' returned no embedding.");
                    vectors.Add(Normalize(result[0]));
                }
                return new EmbeddingResult(vectors, counts.Sum(c => (long)c));
            }
            finally
            {
                _embedLock.Release();
            }
        }
        finally
        {
            Interlocked.Decrement(ref _active);
            Interlocked.Exchange(ref _lastUsed, Stopwatch.GetTimestamp());
        }
    }

    private LLamaEmbedder CreateEmbedder(int contextSize)
    {
        var parameters = new ModelParams(_parameters.ModelPath)
        {
            ContextSize = (uint)contextSize,
            BatchSize = (uint)contextSize,
            UBatchSize = (uint)contextSize,
            SeqMax = 1,
            Embeddings = true,
            PoolingType = LLamaPoolingType.Mean,
            Threads = _parameters.Threads,
            BatchThreads = _parameters.BatchThreads,
            GpuLayerCount = 0,
            FlashAttention = _parameters.FlashAttention,
        };
        try
        {
            return new LLamaEmbedder(_weights, parameters, _logger);
        }
        catch (NotSupportedException ex)
        {
            throw new EmbeddingsNotSupportedException($"Model '{ModelId}' cannot produce embeddings: {ex.Message}", ex);
        }
    }

    private static float[] Normalize(float[] vector)
    {
        var sum = 0.0;
        foreach (var v in vector) sum += (double)v * v;
        if (sum <= 0) return vector;
        var scale = (float)(1.0 / Math.Sqrt(sum));
        for (var i = 0; i < vector.Length; i++) vector[i] *= scale;
        return vector;
    }

    /// <summary>Queues a request and streams its events until it finishes or <paramref name="ct"/> cancels it.</summary>
    public async IAsyncEnumerable<EngineEvent> GenerateAsync(
        IReadOnlyList<LLamaToken> prompt, SamplingSettings sampling, int maxTokens, IReadOnlyList<string> stop,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        if (prompt.Count == 0) throw new ArgumentException("The prompt is empty.", nameof(prompt));
        if (prompt.Count >= SequenceLimit)
            throw new PromptTooLongException(ModelId, prompt.Count, SequenceLimit);
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

    /// <summary>A request holding a sequence of the context.</summary>
    private sealed class ActiveJob(GenerationJob job, int sequence, int cachedTokens, CacheEntry? source, ISamplingPipeline pipeline, StreamingTokenDecoder decoder)
    {
        public GenerationJob Job { get; } = job;
        public int Sequence { get; } = sequence;

        /// <summary>Tokens in this sequence's KV cache, in position order.</summary>
        public List<LLamaToken> Evaluated { get; } = new(job.PromptTokens.Count + job.MaxTokens);

        /// <summary>Index into the prompt of the next prompt token still to read.</summary>
        public int PromptCursor { get; set; } = cachedTokens;

        /// <summary>The sampled token not yet in the KV cache (fed in the next batch).</summary>
        public LLamaToken? Pending { get; set; }

        /// <summary>Batch index whose logits belong to this request after the current decode, or -1.</summary>
        public int LogitsIndex { get; set; } = -1;

        public int CachedTokens { get; } = cachedTokens;
        public CacheEntry? Source { get; } = source;
        public ISamplingPipeline Pipeline { get; } = pipeline;
        public StreamingTokenDecoder Decoder { get; } = decoder;
        public StopSequenceFilter Filter { get; } = new(job.Stop);
        public long AdmittedAt { get; } = Stopwatch.GetTimestamp();
        public long FirstTokenAt { get; set; }
        public int Generated { get; set; }
        public bool ReadingPrompt => PromptCursor < Job.PromptTokens.Count;
    }

    private sealed class CacheEntry(int sequence, List<LLamaToken> tokens)
    {
        public int Sequence { get; } = sequence;
        public List<LLamaToken> Tokens { get; } = tokens;
        public long LastUsed { get; set; } = Stopwatch.GetTimestamp();
    }

    private void RunLoop()
    {
        var active = new List<ActiveJob>();
        var batch = new LLamaBatch();
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
                if (active.Count == 0)
                {
                    // Block this dedicated thread until work arrives (or the engine unloads).
                    if (!_queue.Reader.WaitToReadAsync(stopping).AsTask().GetAwaiter().GetResult()) break;
                    continue;
                }

                FillBatch(batch, active);
                if (Decode(batch) == DecodeResult.NoKvSlot)
                {
                    // Nothing more can be evicted and the shared KV cache is full. A partly decoded batch leaves the
                    // sequences in an unknown state, so every request in it ends with a clear error.
                    var error = new InferenceUnavailableException(
                        $"Model '{ModelId}' ran out of context cells ({_context.ContextSize}) with {active.Count} requests running; " +
                        "raise Sutazai:Inference:LlamaCpp:ContextSize or lower ParallelSlots.");
                    foreach (var job in active) Fail(job, error);
                    active.Clear();
                    continue;
                }

                foreach (var job in active.ToList())
                {
                    if (job.LogitsIndex < 0) continue;
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
        _loopDone.TrySetResult();
    }

    /// <summary>
    /// One batch: every generating request's pending token, then prompt chunks of requests still reading their
    /// prompt, up to the batch size. Logits are requested only where a token will be sampled.
    /// </summary>
    private void FillBatch(LLamaBatch batch, List<ActiveJob> active)
    {
        batch.Clear();
        var seq = default(LLamaSeqId);
        foreach (var job in active)
        {
            job.LogitsIndex = -1;
            if (job.Pending is not { } token) continue;
            seq = (LLamaSeqId)job.Sequence;
            job.LogitsIndex = batch.Add(token, job.Evaluated.Count, seq, true);
            job.Evaluated.Add(token);
            job.Pending = null;
        }
        foreach (var job in active)
        {
            if (!job.ReadingPrompt) continue;
            var room = _batchSize - batch.TokenCount;
            if (room <= 0) break;
            seq = (LLamaSeqId)job.Sequence;
            var prompt = job.Job.PromptTokens;
            var take = Math.Min(room, prompt.Count - job.PromptCursor);
            for (var i = 0; i < take; i++)
            {
                var last = job.PromptCursor + 1 == prompt.Count;
                var index = batch.Add(prompt[job.PromptCursor], job.Evaluated.Count, seq, last);
                job.Evaluated.Add(prompt[job.PromptCursor]);
                job.PromptCursor++;
                if (last) job.LogitsIndex = index;
            }
        }
    }

    /// <summary>Decodes the batch; on a full KV cache evicts cached prefixes and retries.</summary>
    private DecodeResult Decode(LLamaBatch batch)
    {
        while (true)
        {
            var result = _context.NativeHandle.Decode(batch);
            if (result == DecodeResult.Ok) return result;
            if (result == DecodeResult.NoKvSlot && EvictOldest()) continue;
            if (result == DecodeResult.NoKvSlot) return result;
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
            if (_freeSequences.Count == 0 && !EvictOldest(except: best))
                throw new InferenceUnavailableException($"Model '{ModelId}' has no free sequence slot.");
            var sequence = _freeSequences.Pop();
            var reused = 0;
            if (best is not null)
            {
                // Never reuse the whole prompt: the last token must be read again to produce fresh logits.
                reused = Math.Min(common, prompt.Count - 1);
                _context.NativeHandle.MemorySequenceCopy((LLamaSeqId)best.Sequence, (LLamaSeqId)sequence, 0, reused);
                best.LastUsed = Stopwatch.GetTimestamp();
            }
            ISamplingPipeline pipeline = job.Sampling.IsGreedy
                ? new GreedySamplingPipeline()
                : new DefaultSamplingPipeline
                {
                    Temperature = job.Sampling.Temperature,
                    TopP = job.Sampling.TopP,
                    TopK = job.Sampling.TopK,
                    Seed = job.Sampling.Seed ?? (uint)Random.Shared.Next(),
                };
            var admitted = new ActiveJob(job, sequence, reused, best, pipeline, new StreamingTokenDecoder(_context));
            for (var i = 0; i < reused; i++) admitted.Evaluated.Add(prompt[i]);
            return admitted;
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
        var token = job.Pipeline.Sample(_context.NativeHandle, job.LogitsIndex);
        job.LogitsIndex = -1;
        if (job.FirstTokenAt == 0) job.FirstTokenAt = Stopwatch.GetTimestamp();
        if (token.IsEndOfGeneration(_weights.Vocab)) return ChatFinishReason.Stop;

        job.Generated++;
        job.Decoder.Add(token);
        var text = job.Filter.Push(job.Decoder.Read());
        if (text.Length > 0) job.Job.Output.Writer.TryWrite(new EngineEvent.Text(text));
        if (job.Filter.Stopped) return ChatFinishReason.Stop;
        if (job.Generated >= job.Job.MaxTokens) return ChatFinishReason.Length;
        if (job.Evaluated.Count + 1 >= SequenceLimit) return ChatFinishReason.Length;
        job.Pending = token;
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
        Retire(job, keep && !job.ReadingPrompt);
    }

    private void Fail(ActiveJob job, Exception error)
    {
        job.Job.Output.Writer.TryWrite(new EngineEvent.Failed(error));
        job.Pipeline.Dispose();
        Retire(job, keep: false);
    }

    /// <summary>Keeps a finished sequence for prefix reuse, or clears it and frees its id.</summary>
    private void Retire(ActiveJob job, bool keep)
    {
        if (!keep || _cacheEntries == 0 || job.Evaluated.Count < 2)
        {
            Release(job.Sequence);
            return;
        }
        // The KV cache of this sequence holds exactly job.Evaluated (the last sampled token was never fed).
        if (job.Source is { } source && _cache.Contains(source) && CommonPrefix(source.Tokens, job.Evaluated) == source.Tokens.Count)
        {
            _cache.Remove(source);
            Release(source.Sequence);
        }
        while (_cache.Count >= _cacheEntries) EvictOldest();
        _cache.Add(new CacheEntry(job.Sequence, job.Evaluated));
    }

    private void Release(int sequence)
    {
        _context.NativeHandle.MemorySequenceRemove((LLamaSeqId)sequence, -1, -1);
        _freeSequences.Push(sequence);
    }

    private bool EvictOldest(CacheEntry? except = null)
    {
        var oldest = _cache.Where(e => e != except).MinBy(e => e.LastUsed);
        if (oldest is null) return false;
        _cache.Remove(oldest);
        Release(oldest.Sequence);
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
        await _loopDone.Task;
        await _embedLock.WaitAsync();
        try
        {
            _disposed = true;
            _embedder?.Dispose();
            _embedder = null;
        }
        finally
        {
            _embedLock.Release();
        }
        _context.Dispose();
        _weights.Dispose();
        _stopping.Dispose();
    }
}

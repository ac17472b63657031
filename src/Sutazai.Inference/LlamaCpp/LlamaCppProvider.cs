using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Sutazai.Inference.Gguf;

namespace Sutazai.Inference.LlamaCpp;

/// <summary>A GGUF file in the models folder, described from its metadata without loading it.</summary>
public sealed record LlamaModelFile(
    string Id,
    string Path,
    long SizeBytes,
    int? ContextLength,
    string? Family,
    string? Quantization,
    string? ChatTemplate,
    long EstimatedBytes)
{
    public ModelInfo ToInfo(bool loaded) => new(Id, LlamaCppProvider.ProviderName, SizeBytes, ContextLength, Family, Quantization, loaded);
}

public sealed record LoadedModel(LlamaEngine Engine, LlamaModelFile File);

/// <summary>
/// Runs GGUF models in-process with llama.cpp (LLamaSharp). Models load on first use (one load at a time, after a
/// memory estimate), stay loaded while used, and unload after <see cref="LlamaCppOptions.KeepAlive"/> idle.
/// </summary>
public sealed class LlamaCppProvider : IModelProvider, ITokenCounter, IEmbeddingProvider, IAsyncDisposable
{
    public const string ProviderName = "llamacpp";

    private readonly IOptionsMonitor<InferenceOptions> _options;
    private readonly ILogger<LlamaCppProvider> _logger;
    private readonly ConcurrentDictionary<string, LoadedModel> _loaded = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (DateTime Modified, long Size, LlamaModelFile File)> _metadata = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _loadLock = new(1, 1);
    private readonly Timer _keepAlive;

    public LlamaCppProvider(IOptionsMonitor<InferenceOptions> options, ILogger<LlamaCppProvider> logger)
    {
        _options = options;
        _logger = logger;
        LlamaNative.EnsureConfigured(logger);
        _keepAlive = new Timer(_ => _ = UnloadIdleAsync(), null, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(5));
    }

    public string Name => ProviderName;

    private LlamaCppOptions Options => _options.CurrentValue.LlamaCpp;

    public string ModelsDir => Options.ModelsDir;

    public IReadOnlyCollection<string> LoadedModelIds => _loaded.Keys.ToList();

    public Task<IReadOnlyList<ModelInfo>> ListModelsAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ModelInfo>>(ListFiles().Select(f => f.ToInfo(_loaded.ContainsKey(f.Id))).ToList());

    /// <summary>Every readable GGUF file in the models folder; unreadable ones are logged and left out.</summary>
    public IReadOnlyList<LlamaModelFile> ListFiles()
    {
        var dir = ModelsDir;
        if (!Directory.Exists(dir)) return [];
        var files = new List<LlamaModelFile>();
        foreach (var path in Directory.EnumerateFiles(dir, "*.gguf", SearchOption.TopDirectoryOnly).Order(StringComparer.Ordinal))
        {
            if (Describe(path) is { } file) files.Add(file);
        }
        return files;
    }

    public LlamaModelFile? FindFile(string modelId) =>
        ListFiles().FirstOrDefault(f => string.Equals(f.Id, modelId, StringComparison.Ordinal));

    private LlamaModelFile? Describe(string path)
    {
        var info = new FileInfo(path);
        if (_metadata.TryGetValue(path, out var cached) && cached.Modified == info.LastWriteTimeUtc && cached.Size == info.Length)
            return cached.File;
        try
        {
            var gguf = GgufReader.Read(path);
            var file = new LlamaModelFile(
                System.IO.Path.GetFileNameWithoutExtension(path), path, info.Length,
                gguf.ContextLength is { } ctx ? (int)Math.Min(ctx, int.MaxValue) : null,
                gguf.Architecture, gguf.Quantization, gguf.ChatTemplate,
                EstimateBytes(gguf, Options));
            _metadata[path] = (info.LastWriteTimeUtc, info.Length, file);
            return file;
        }
        catch (Exception ex) when (ex is InvalidDataException or IOException or EndOfStreamException)
        {
            _logger.LogWarning("Skipping {Path}: not a readable GGUF model ({Message})", path, ex.Message);
            return null;
        }
    }

    /// <summary>Weights (mapped into memory) plus the F16 KV cache of the configured context plus working buffers.</summary>
    internal static long EstimateBytes(GgufFile gguf, LlamaCppOptions options)
    {
        var arch = gguf.Architecture ?? "llama";
        var layers = gguf.BlockCount ?? 0;
        var embd = gguf.EmbeddingLength ?? 0;
        var heads = gguf.HeadCount ?? 1;
        var kvHeads = gguf.GetInt64($"{arch}.attention.head_count_kv") ?? heads;
        var kvDim = heads > 0 ? embd / heads * kvHeads : embd;
        var kvBytes = (long)options.ContextSize * layers * kvDim * 2 /* K and V */ * 2 /* F16 */;
        var vocab = gguf.VocabularySize ?? 32000;
        var logits = vocab * 4L * Math.Max(32, options.BatchSize);
        return gguf.TensorDataBytes + kvBytes + logits + (64L << 20);
    }

    public IChatClient GetChatClient(string modelId) => new LlamaChatClient(this, modelId);

    public async Task<int> CountTokensAsync(string modelId, string text, CancellationToken cancellationToken) =>
        (await GetEngineAsync(modelId, cancellationToken)).Engine.Tokenize(text, addBos: false).Length;

    public async IAsyncEnumerable<ChatResponseUpdate> CompleteAsync(string modelId, string prompt, ChatOptions? options, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var loaded = await GetEngineAsync(modelId, cancellationToken);
        var tokens = loaded.Engine.Tokenize(prompt, addBos: true);
        await foreach (var update in StreamAsync(loaded.Engine, tokens, options, cancellationToken))
            yield return update;
    }

    /// <summary>Mean-pooled, L2-normalized embeddings from the model's own embedding context (see <see cref="LlamaEngine.EmbedAsync"/>).</summary>
    public async Task<EmbeddingResult> EmbedAsync(string modelId, IReadOnlyList<string> inputs, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var loaded = await GetEngineAsync(modelId, cancellationToken);
        try
        {
            return await loaded.Engine.EmbedAsync(inputs, cancellationToken);
        }
        catch (Exception ex) when (ex is LLama.Exceptions.RuntimeError or ArgumentException or ObjectDisposedException)
        {
            throw new InferenceUnavailableException($"Embedding with '{modelId}' failed: {ex.Message}", ex);
        }
    }

    public Task<ProviderHealth> CheckHealthAsync(CancellationToken cancellationToken)
    {
        var files = ListFiles();
        var loaded = _loaded.Keys.ToList();
        var detail = files.Count == 0
            ? $"No GGUF model in {ModelsDir}. Pull one (POST /api/v1/models/pull) or copy a .gguf file there."
            : $"{files.Count} model(s) in {ModelsDir}; loaded: {(loaded.Count == 0 ? "none" : string.Join(", ", loaded))}.";
        return Task.FromResult(new ProviderHealth(ProviderName, files.Count > 0, detail));
    }

    /// <summary>Returns the loaded engine for a model, loading it first (one load at a time) when needed.</summary>
    public async Task<LoadedModel> GetEngineAsync(string modelId, CancellationToken ct)
    {
        if (_loaded.TryGetValue(modelId, out var loaded)) return loaded;
        var file = FindFile(modelId) ?? throw new ModelNotFoundException(modelId);
        await _loadLock.WaitAsync(ct);
        try
        {
            if (_loaded.TryGetValue(modelId, out loaded)) return loaded;
            var budget = Options.MaxMemoryBytes > 0 ? Options.MaxMemoryBytes : MemoryInfo.AvailableBytes();
            var inUse = _loaded.Values.Sum(l => l.File.EstimatedBytes);
            if (file.EstimatedBytes > budget - inUse)
            {
                throw new InferenceUnavailableException(
                    $"Model '{modelId}' needs about {Gib(file.EstimatedBytes)} GiB (weights and a {Options.ContextSize}-token KV cache) but only " +
                    $"{Gib(Math.Max(0, budget - inUse))} GiB is available. Unload other models, lower Sutazai:Inference:LlamaCpp:ContextSize, or use a smaller quantization.");
            }
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            var engine = await LlamaEngine.LoadAsync(modelId, file.Path, Options, file.ContextLength ?? 0, _logger, ct);
            _logger.LogInformation("Loaded model {Model} from {Path} in {Ms:F0} ms ({Slots} slots, context {Context})",
                modelId, file.Path, System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds, Options.ParallelSlots, Options.ContextSize);
            loaded = new LoadedModel(engine, file);
            _loaded[modelId] = loaded;
            return loaded;
        }
        catch (Exception ex) when (ex is not (InferenceUnavailableException or ModelNotFoundException or OperationCanceledException))
        {
            throw new InferenceUnavailableException($"Model '{modelId}' could not be loaded from {file.Path}: {ex.Message}", ex);
        }
        finally
        {
            _loadLock.Release();
        }
    }

    public async Task<bool> UnloadAsync(string modelId)
    {
        if (!_loaded.TryRemove(modelId, out var loaded)) return false;
        await loaded.Engine.DisposeAsync();
        _logger.LogInformation("Unloaded model {Model}", modelId);
        return true;
    }

    private async Task UnloadIdleAsync()
    {
        var keepAlive = Options.KeepAlive;
        if (keepAlive < TimeSpan.Zero) return;
        foreach (var (id, loaded) in _loaded.ToList())
        {
            if (loaded.Engine.ActiveRequests == 0 && loaded.Engine.IdleFor >= keepAlive)
            {
                try
                {
                    await UnloadAsync(id);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    _logger.LogError(ex, "Unloading idle model {Model} failed", id);
                }
            }
        }
    }

    /// <summary>Validates options, runs a request on the engine and turns its events into chat updates.</summary>
    internal async IAsyncEnumerable<ChatResponseUpdate> StreamAsync(LlamaEngine engine, IReadOnlyList<LLama.Native.LLamaToken> tokens, ChatOptions? options, [EnumeratorCancellation] CancellationToken ct)
    {
        var inference = _options.CurrentValue;
        var sampling = new SamplingSettings(
            options?.Temperature ?? 0.8f,
            options?.TopP ?? 0.95f,
            options?.TopK ?? 40,
            options?.Seed is { } seed ? unchecked((uint)seed) : null);
        var maxTokens = Math.Min(options?.MaxOutputTokens ?? inference.DefaultMaxOutputTokens, inference.MaxOutputTokensLimit);
        var stop = options?.StopSequences?.ToList() ?? [];
        var responseId = Guid.NewGuid().ToString("N");
        await foreach (var item in engine.GenerateAsync(tokens, sampling, maxTokens, stop, ct))
        {
            switch (item)
            {
                case EngineEvent.Text text:
                    yield return new ChatResponseUpdate(ChatRole.Assistant, text.Content) { ModelId = engine.ModelId, ResponseId = responseId };
                    break;
                case EngineEvent.Finished done:
                    var usage = new UsageDetails
                    {
                        InputTokenCount = done.Stats.PromptTokens,
                        OutputTokenCount = done.Stats.CompletionTokens,
                        TotalTokenCount = done.Stats.PromptTokens + done.Stats.CompletionTokens,
                        CachedInputTokenCount = done.Stats.CachedPromptTokens,
                    };
                    yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(usage)])
                    {
                        ModelId = engine.ModelId,
                        ResponseId = responseId,
                        FinishReason = done.Reason,
                        AdditionalProperties = new AdditionalPropertiesDictionary { [GenerationStatsKey] = done.Stats },
                    };
                    break;
                case EngineEvent.Failed failed:
                    if (failed.Error is OperationCanceledException) ct.ThrowIfCancellationRequested();
                    throw failed.Error is InferenceUnavailableException
                        ? failed.Error
                        : new InferenceUnavailableException($"Generation with '{engine.ModelId}' failed: {failed.Error.Message}", failed.Error);
            }
        }
    }

    /// <summary>Key under which the last update's AdditionalProperties carry <see cref="GenerationStats"/>.</summary>
    public const string GenerationStatsKey = "sutazai.stats";

    private static string Gib(long bytes) => (bytes / (double)(1L << 30)).ToString("F2", System.Globalization.CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync()
    {
        await _keepAlive.DisposeAsync();
        foreach (var id in _loaded.Keys.ToList()) await UnloadAsync(id);
        _loadLock.Dispose();
    }
}

/// <summary>Memory the operating system can still give (MemAvailable on Linux).</summary>
internal static class MemoryInfo
{
    public static long AvailableBytes()
    {
        if (OperatingSystem.IsLinux() && File.Exists("/proc/meminfo"))
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
            {
                if (!line.StartsWith("MemAvailable:", StringComparison.Ordinal)) continue;
                var kb = long.Parse(line["MemAvailable:".Length..].Replace("kB", "", StringComparison.Ordinal).Trim(), System.Globalization.CultureInfo.InvariantCulture);
                return kb * 1024;
            }
        }
        return GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
    }
}

using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Sutazai.Inference;

/// <summary>A model resolved to the provider that runs it, with what the provider said about it.</summary>
public sealed record ResolvedModel(IModelProvider Provider, string ModelId, ModelInfo? Info = null)
{
    /// <summary>The ActivitySource and Meter of model calls (OpenTelemetry GenAI conventions: spans with token usage, gen_ai.client.* metrics).</summary>
    public const string TelemetrySource = "Sutazai.Inference";

    /// <summary>
    /// The model's chat client, traced and measured with the OpenTelemetry GenAI conventions (no prompt or reply text
    /// is recorded); with no listener for <see cref="TelemetrySource"/> the wrapper does nothing.
    /// </summary>
    public IChatClient ChatClient() =>
        TracedClients.GetOrCreateValue(Provider).GetOrAdd(ModelId, static (id, provider) =>
            provider.GetChatClient(id).AsBuilder().UseOpenTelemetry(sourceName: TelemetrySource).Build(), Provider);

    /// <summary>
    /// Raw completion of <paramref name="prompt"/> (no chat template), traced and measured like <see cref="ChatClient"/>
    /// with <c>gen_ai.operation.name = text_completion</c>.
    /// </summary>
    public IAsyncEnumerable<ChatResponseUpdate> CompleteAsync(string prompt, ChatOptions? options, CancellationToken cancellationToken) =>
        CompletionTelemetry.TraceAsync(this, prompt, options, cancellationToken);

    // One traced client per provider and model, made once: the OpenTelemetry wrapper creates its own ActivitySource
    // and Meter, which a client made per call would leave registered (a Meter per generation). The table lets a
    // replaced provider (a new Ollama address) take its clients with it.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<IModelProvider, System.Collections.Concurrent.ConcurrentDictionary<string, IChatClient>> TracedClients = new();
}

/// <summary>The default model an administrator chose at run time (stored by the host, for example in its database).</summary>
public interface IDefaultModelStore
{
    /// <summary>The chosen model (<c>model</c> or <c>provider/model</c>), or null when none was chosen.</summary>
    ValueTask<string?> GetAsync(CancellationToken ct);
}

/// <summary>Every configured provider's models, listed together, and the rule that picks one for a request.</summary>
public sealed class ModelCatalog(IEnumerable<IModelProvider> providers, IOptionsMonitor<InferenceOptions> options, ILogger<ModelCatalog> logger, TimeProvider time,
    IDefaultModelStore? defaultModelStore = null)
{
    /// <summary>
    /// Every generation resolves its model through a listing, and listing a remote provider costs HTTP calls (Ollama:
    /// tags, running models, one show per model), so remote listings are reused for a few seconds; the in-process
    /// provider is always asked afresh (its file metadata is cached by file, and its loaded state changes often).
    /// Pulls and deletes invalidate at once.
    /// </summary>
    public static readonly TimeSpan ListingLifetime = TimeSpan.FromSeconds(5);

    private readonly IReadOnlyList<IModelProvider> _providers = providers.ToList();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (IReadOnlyList<ModelInfo> Models, DateTimeOffset At)> _remote = new();

    public void Invalidate() => _remote.Clear();

    private async Task<IReadOnlyList<ModelInfo>> ModelsOfAsync(IModelProvider provider, CancellationToken ct)
    {
        if (provider is LlamaCpp.LlamaCppProvider) return await provider.ListModelsAsync(ct);
        if (_remote.TryGetValue(provider.Name, out var cached) && time.GetUtcNow() - cached.At < ListingLifetime) return cached.Models;
        var models = await provider.ListModelsAsync(ct);
        _remote[provider.Name] = (models, time.GetUtcNow());
        return models;
    }

    public IReadOnlyList<IModelProvider> Providers => _providers;

    public sealed record Listing(IReadOnlyList<ModelInfo> Models, IReadOnlyList<ProviderHealth> Problems);

    /// <summary>Lists every provider's models; a provider that fails is reported, not fatal.</summary>
    public async Task<Listing> ListAsync(CancellationToken ct)
    {
        var results = await Task.WhenAll(_providers.Select(async p =>
        {
            try
            {
                return (Models: await ModelsOfAsync(p, ct), Problem: (ProviderHealth?)null);
            }
            catch (Exception ex) when (ex is InferenceUnavailableException or HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                logger.LogWarning("Listing models of {Provider} failed: {Message}", p.Name, ex.Message);
                return (Models: (IReadOnlyList<ModelInfo>)[], Problem: new ProviderHealth(p.Name, false, ex.Message));
            }
        }));
        return new Listing(
            results.SelectMany(r => r.Models).ToList(),
            results.Where(r => r.Problem is not null).Select(r => r.Problem!).ToList());
    }

    /// <summary>
    /// The model a request should use: the named one (optionally as <c>provider/model</c>), else the default an
    /// administrator chose (<see cref="IDefaultModelStore"/>), else the configured default, else the first model of the
    /// default provider, else the first model anywhere. A chosen or configured default that is not listed is skipped.
    /// </summary>
    public async Task<ResolvedModel> ResolveAsync(string? requested, CancellationToken ct)
    {
        var listing = await ListAsync(ct);
        var models = listing.Models;
        if (!string.IsNullOrWhiteSpace(requested))
        {
            var match = Find(models, requested);
            if (match is null) throw new ModelNotFoundException(requested);
            return new ResolvedModel(ProviderOf(match.Provider), match.Id, match);
        }
        if (defaultModelStore is not null && await defaultModelStore.GetAsync(ct) is { Length: > 0 } chosen && Find(models, chosen) is { } stored)
            return new ResolvedModel(ProviderOf(stored.Provider), stored.Id, stored);
        var configured = options.CurrentValue;
        if (!string.IsNullOrWhiteSpace(configured.DefaultModel) && Find(models, configured.DefaultModel) is { } preferred)
            return new ResolvedModel(ProviderOf(preferred.Provider), preferred.Id, preferred);
        var fallback = models.FirstOrDefault(m => m.Provider == configured.Provider) ?? models.FirstOrDefault();
        if (fallback is null) throw new NoModelAvailableException(listing.Problems);
        return new ResolvedModel(ProviderOf(fallback.Provider), fallback.Id, fallback);
    }

    public async Task<string?> DefaultModelIdAsync(CancellationToken ct) => (await DefaultModelAsync(ct))?.Id;

    /// <summary>The model a request that names none would use, or null when no model is available.</summary>
    public async Task<ModelInfo?> DefaultModelAsync(CancellationToken ct)
    {
        try
        {
            return (await ResolveAsync(null, ct)).Info;
        }
        catch (NoModelAvailableException)
        {
            return null;
        }
    }

    /// <summary>The listed model a name (<c>model</c> or <c>provider/model</c>) refers to, or null.</summary>
    public async Task<ModelInfo?> FindAsync(string name, CancellationToken ct) => Find((await ListAsync(ct)).Models, name);

    public IModelProvider? Provider(string name) => _providers.FirstOrDefault(p => p.Name == name);

    private IModelProvider ProviderOf(string name) => Provider(name) ?? throw new InvalidOperationException($"Provider {name} is not registered.");

    private static ModelInfo? Find(IReadOnlyList<ModelInfo> models, string requested)
    {
        var slash = requested.IndexOf('/', StringComparison.Ordinal);
        if (slash > 0 && models.FirstOrDefault(m => m.Provider == requested[..slash] && m.Id == requested[(slash + 1)..]) is { } qualified)
            return qualified;
        return models.FirstOrDefault(m => m.Id == requested);
    }
}

/// <summary>No provider offers any model: the message says how to get one.</summary>
public sealed class NoModelAvailableException(IReadOnlyList<ProviderHealth> problems)
    : Exception("No language model is available. Pull one (POST /api/v1/models/pull {\"source\": \"hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF/tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf\"}, " +
        "or `sutazai pull` on the server), copy a .gguf file into the models folder, or connect Ollama (Sutazai:Inference:Ollama:Url)." +
        (problems.Count == 0 ? "" : " Provider problems: " + string.Join("; ", problems.Select(p => $"{p.Provider}: {p.Detail}"))))
{
    public IReadOnlyList<ProviderHealth> Problems { get; } = problems;
}

/// <summary>Built-in list of small chat models users can pull in one click.</summary>
public static class ModelCatalogue
{
    public sealed record Entry(string Name, string Source, string Description, long ApproximateBytes);

    public static IReadOnlyList<Entry> Entries { get; } =
    [
        new("TinyLlama 1.1B Chat (Q4_K_M)", "hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF/tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf",
            "The original SutazAI's model: small, fast, English chat.", 668_788_096),
        new("Qwen2.5 0.5B Instruct (Q4_K_M)", "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf",
            "Tiny multilingual instruct model with a 32k context.", 491_400_032),
        new("Llama 3.2 1B Instruct (Q4_K_M)", "hf:bartowski/Llama-3.2-1B-Instruct-GGUF/Llama-3.2-1B-Instruct-Q4_K_M.gguf",
            "Meta's small instruct model; good quality for its size.", 807_694_464),
        new("SmolLM2 360M Instruct (Q8_0)", "hf:HuggingFaceTB/SmolLM2-360M-Instruct-GGUF/smollm2-360m-instruct-q8_0.gguf",
            "Very small; runs anywhere, for quick tests.", 386_404_992),
    ];
}

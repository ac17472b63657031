using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Sutazai.Inference;
using Sutazai.Inference.LlamaCpp;
using Sutazai.Inference.Providers;
using Sutazai.Inference.Pull;
using Sutazai.Server.Configuration;

namespace Sutazai.Server.Inference;

public static class InferenceSetup
{
    public const string PullHttpClient = "model-pull";

    public static WebApplicationBuilder AddSutazaiInference(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<InferenceOptions>()
            .BindConfiguration(InferenceOptions.Section)
            .PostConfigure<IOptions<SutazaiOptions>>((o, app) =>
            {
                if (string.IsNullOrWhiteSpace(o.LlamaCpp.ModelsDir)) o.LlamaCpp.ModelsDir = Path.Combine(app.Value.DataPath, "models");
                o.LlamaCpp.ModelsDir = Path.GetFullPath(o.LlamaCpp.ModelsDir);
            })
            .Validate(o => o.Provider is LlamaCppProvider.ProviderName or "ollama" or "openai", "Sutazai:Inference:Provider must be 'llamacpp', 'ollama' or 'openai'.")
            .Validate(o => o.MaxOutputTokensLimit is >= 1 and <= 1_000_000, "Sutazai:Inference:MaxOutputTokensLimit must be between 1 and 1000000.")
            .Validate(o => o.MaxPromptChars is >= 1 and <= 100_000_000, "Sutazai:Inference:MaxPromptChars must be between 1 and 100000000.")
            .Validate(o => o.MaxEmbeddingInputChars is >= 1 and <= 100_000_000, "Sutazai:Inference:MaxEmbeddingInputChars must be between 1 and 100000000.")
            .Validate(o => o.MaxEmbeddingInputs is >= 1 and <= 1_000_000, "Sutazai:Inference:MaxEmbeddingInputs must be between 1 and 1000000.")
            .Validate(o => o.DefaultMaxOutputTokens >= 1 && o.DefaultMaxOutputTokens <= o.MaxOutputTokensLimit, "Sutazai:Inference:DefaultMaxOutputTokens must be between 1 and MaxOutputTokensLimit.")
            .Validate(o => o.LlamaCpp.Threads is >= 0 and <= 1024, "Sutazai:Inference:LlamaCpp:Threads must be between 0 and 1024.")
            .Validate(o => o.LlamaCpp.ContextSize is >= 256 and <= 1_048_576, "Sutazai:Inference:LlamaCpp:ContextSize must be between 256 and 1048576.")
            .Validate(o => o.LlamaCpp.ParallelSlots is >= 1 and <= 64, "Sutazai:Inference:LlamaCpp:ParallelSlots must be between 1 and 64.")
            .Validate(o => o.LlamaCpp.PrefixCacheEntries is >= 0 and <= 64, "Sutazai:Inference:LlamaCpp:PrefixCacheEntries must be between 0 and 64.")
            .Validate(o => o.LlamaCpp.BatchSize is >= 32 and <= 8192, "Sutazai:Inference:LlamaCpp:BatchSize must be between 32 and 8192.")
            .Validate(o => o.LlamaCpp.MaxMemoryBytes >= 0, "Sutazai:Inference:LlamaCpp:MaxMemoryBytes must not be negative.")
            .Validate(o => o.Ollama.Url.Length == 0 || Uri.TryCreate(o.Ollama.Url, UriKind.Absolute, out _), "Sutazai:Inference:Ollama:Url must be an absolute URL.")
            .Validate(o => o.OpenAI.BaseUrl.Length == 0 || Uri.TryCreate(o.OpenAI.BaseUrl, UriKind.Absolute, out _), "Sutazai:Inference:OpenAI:BaseUrl must be an absolute URL.")
            .Validate(o => o.Pull.MaxConcurrent is >= 1 and <= 16, "Sutazai:Inference:Pull:MaxConcurrent must be between 1 and 16.")
            .ValidateOnStart();

        services.AddSingleton<LlamaCppProvider>();
        services.AddSingleton<IModelProvider>(sp => sp.GetRequiredService<LlamaCppProvider>());

        // Ollama: configured, or found on its default port at start-up when nothing else is set up.
        var inference = builder.Configuration.Read<InferenceOptions>(InferenceOptions.Section);
        var dataPath = builder.Configuration.Read<SutazaiOptions>(SutazaiOptions.Section).DataPath;
        // An administrator can connect, change or disconnect it at run time (OllamaSwitch, PUT /api/v1/admin/ollama).
        var ollamaUrl = inference.Ollama.Url;
        var ollamaSource = string.IsNullOrWhiteSpace(ollamaUrl) ? OllamaUrlSource.None : OllamaUrlSource.Configuration;
        if (ollamaSource == OllamaUrlSource.None && inference.Ollama.AutoDetect && NoLocalModel(inference, dataPath) && ProbeOllama())
            (ollamaUrl, ollamaSource) = (OllamaProvider.DefaultUrl, OllamaUrlSource.AutoDetected);
        services.AddSingleton(sp => new OllamaSwitch(ollamaUrl, ollamaSource, inference.Ollama.Timeout,
            sp.GetRequiredService<SystemSettings>(), sp.GetRequiredService<ILogger<OllamaProvider>>()));
        services.AddSingleton<IModelProvider>(sp => sp.GetRequiredService<OllamaSwitch>());
        services.AddSingleton<IOllamaPuller>(sp => new OllamaPuller(sp.GetRequiredService<OllamaSwitch>().CurrentAsync, () => sp.GetRequiredService<IHttpClientFactory>().CreateClient(PullHttpClient)));
        if (!string.IsNullOrWhiteSpace(inference.OpenAI.BaseUrl))
        {
            services.AddSingleton(_ => new OpenAICompatibleProvider(inference.OpenAI));
            services.AddSingleton<IModelProvider>(sp => sp.GetRequiredService<OpenAICompatibleProvider>());
        }
        services.AddSingleton<SystemSettings>();
        services.AddSingleton<StoredDefaultModel>();
        services.AddSingleton<IDefaultModelStore>(sp => sp.GetRequiredService<StoredDefaultModel>());
        services.AddSingleton<ModelCatalog>();
        services.AddSingleton<LocalModels>();
        services.AddHttpClient(PullHttpClient, c => c.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { AllowAutoRedirect = false, AutomaticDecompression = System.Net.DecompressionMethods.None });
        services.AddSingleton(sp => new ModelDownloader(
            sp.GetRequiredService<IHttpClientFactory>().CreateClient(PullHttpClient),
            sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<PullService>();
        services.AddSingleton<GenerationRunner>();
        services.AddSingleton(sp =>
        {
            var limits = sp.GetRequiredService<IOptionsMonitor<RateLimitOptions>>();
            return new GenerationLimiter(() => limits.CurrentValue.ConcurrentGenerationsPerUser);
        });
        services.AddHealthChecks().AddCheck<InferenceHealthCheck>("inference", tags: ["ready"]);
        return builder;
    }

    private static bool NoLocalModel(InferenceOptions inference, string dataPath)
    {
        var dir = string.IsNullOrWhiteSpace(inference.LlamaCpp.ModelsDir) ? Path.Combine(dataPath, "models") : inference.LlamaCpp.ModelsDir;
        return string.IsNullOrWhiteSpace(inference.DefaultModel) && (!Directory.Exists(dir) || !Directory.EnumerateFiles(dir, "*.gguf").Any());
    }

    private static bool ProbeOllama()
    {
        using var http = new HttpClient();
        return OllamaProvider.ProbeAsync(new Uri(OllamaProvider.DefaultUrl), http, CancellationToken.None).GetAwaiter().GetResult();
    }
}

/// <summary>
/// Readiness of inference: healthy when some model can answer, degraded (still 200) when none is installed yet, so a
/// fresh install is "up" and the UI can offer to pull one.
/// </summary>
public sealed class InferenceHealthCheck(ModelCatalog catalog) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var listing = await catalog.ListAsync(cancellationToken);
        var problems = listing.Problems.Select(p => $"{p.Provider}: {p.Detail}").ToList();
        var data = new Dictionary<string, object> { ["models"] = listing.Models.Count };
        if (listing.Models.Count == 0)
            return HealthCheckResult.Degraded("No language model is available yet: pull one (POST /api/v1/models/pull) or connect Ollama." +
                (problems.Count > 0 ? " " + string.Join("; ", problems) : ""), data: data);
        var loaded = listing.Models.Where(m => m.Loaded).Select(m => m.Id).ToList();
        var detail = $"{listing.Models.Count} model(s) available; loaded: {(loaded.Count == 0 ? "none" : string.Join(", ", loaded))}." +
            (problems.Count > 0 ? " " + string.Join("; ", problems) : "");
        return problems.Count > 0 ? HealthCheckResult.Degraded(detail, data: data) : HealthCheckResult.Healthy(detail, data);
    }
}

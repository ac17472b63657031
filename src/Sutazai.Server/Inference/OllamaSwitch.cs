using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using Sutazai.Inference;
using Sutazai.Inference.Providers;

namespace Sutazai.Server.Inference;

/// <summary>Where the Ollama address in use came from.</summary>
public enum OllamaUrlSource
{
    /// <summary>No Ollama server is connected.</summary>
    None,
    /// <summary><c>Sutazai:Inference:Ollama:Url</c>.</summary>
    Configuration,
    /// <summary>Found answering on <see cref="OllamaProvider.DefaultUrl"/> at start-up.</summary>
    AutoDetected,
    /// <summary>Chosen by an administrator at run time (web UI or <c>PUT /api/v1/admin/ollama</c>), stored in the database.</summary>
    Administrator,
}

/// <summary>The Ollama connection in force: its address (null when none) and where that came from.</summary>
public sealed record OllamaConnectionState(string? Url, OllamaUrlSource Source);

/// <summary>
/// The Ollama provider as the model catalogue sees it, switchable without a restart. The address an administrator
/// stored (<see cref="SystemSettings.OllamaUrlKey"/>; an empty value means "disconnected") wins over the configured or
/// auto-detected one. Every listing reads the stored address (cached by <see cref="SystemSettings"/> for a few
/// seconds, so other nodes follow a change within that time) and swaps the underlying <see cref="OllamaProvider"/>
/// when it changed. Replaced providers stay alive until shutdown, so a reply already streaming from the old server
/// finishes.
/// </summary>
public sealed class OllamaSwitch(string? startUpUrl, OllamaUrlSource startUpSource, TimeSpan timeout, SystemSettings settings, ILogger<OllamaProvider> logger)
    : IModelProvider, IEmbeddingProvider, IDisposable
{
    private readonly Lock _gate = new();
    private readonly List<OllamaProvider> _retired = [];
    private OllamaProvider? _current;
    private string? _currentUrl;

    public string Name => OllamaProvider.ProviderName;

    /// <summary>The provider last put in force (null when disconnected); refreshed by <see cref="CurrentAsync"/>.</summary>
    public OllamaProvider? Current
    {
        get
        {
            lock (_gate) return _current;
        }
    }

    /// <summary>The address in force now and its source.</summary>
    public async Task<OllamaConnectionState> StateAsync(CancellationToken ct)
    {
        var stored = await settings.GetAsync(SystemSettings.OllamaUrlKey, ct);
        if (stored is not null) return new OllamaConnectionState(stored.Length == 0 ? null : stored, stored.Length == 0 ? OllamaUrlSource.None : OllamaUrlSource.Administrator);
        return string.IsNullOrWhiteSpace(startUpUrl) ? new OllamaConnectionState(null, OllamaUrlSource.None) : new OllamaConnectionState(startUpUrl, startUpSource);
    }

    /// <summary>The provider for the address in force now, created when the address changed; null when disconnected.</summary>
    public async Task<OllamaProvider?> CurrentAsync(CancellationToken ct) => Use((await StateAsync(ct)).Url);

    /// <summary>Stores <paramref name="url"/> (already probed by the caller) as the address to use, on every node.</summary>
    public async Task ConnectAsync(Uri url, CancellationToken ct)
    {
        var text = url.ToString();
        await settings.SetAsync(SystemSettings.OllamaUrlKey, text, ct);
        Use(text);
    }

    /// <summary>Stops using Ollama (also overriding a configured address) until an administrator connects one again.</summary>
    public async Task DisconnectAsync(CancellationToken ct)
    {
        await settings.SetAsync(SystemSettings.OllamaUrlKey, "", ct);
        Use(null);
    }

    private OllamaProvider? Use(string? url)
    {
        lock (_gate)
        {
            if (string.Equals(url, _currentUrl, StringComparison.Ordinal)) return _current;
            if (_current is not null) _retired.Add(_current);
            _current = url is null ? null : new OllamaProvider(new OllamaOptions { Url = url, Timeout = timeout }, logger: logger);
            _currentUrl = url;
            logger.LogInformation("Ollama connection: {Url}", url ?? "none");
            return _current;
        }
    }

    private OllamaProvider Required() => Current ?? throw new InferenceUnavailableException(
        "No Ollama server is connected. An administrator can connect one in the web UI or with PUT /api/v1/admin/ollama {\"url\": \"http://localhost:11434\"}.");

    public async Task<IReadOnlyList<ModelInfo>> ListModelsAsync(CancellationToken cancellationToken) =>
        await CurrentAsync(cancellationToken) is { } provider ? await provider.ListModelsAsync(cancellationToken) : [];

    public IChatClient GetChatClient(string modelId) => Required().GetChatClient(modelId);

    public async IAsyncEnumerable<ChatResponseUpdate> CompleteAsync(string modelId, string prompt, ChatOptions? options, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var update in Required().CompleteAsync(modelId, prompt, options, cancellationToken)) yield return update;
    }

    public Task<EmbeddingResult> EmbedAsync(string modelId, IReadOnlyList<string> inputs, CancellationToken cancellationToken) =>
        Required().EmbedAsync(modelId, inputs, cancellationToken);

    public async Task<ProviderHealth> CheckHealthAsync(CancellationToken cancellationToken) =>
        await CurrentAsync(cancellationToken) is { } provider
            ? await provider.CheckHealthAsync(cancellationToken)
            : new ProviderHealth(Name, false, "No Ollama server is connected.");

    public void Dispose()
    {
        lock (_gate)
        {
            _current?.Dispose();
            foreach (var old in _retired) old.Dispose();
            _retired.Clear();
            _current = null;
        }
    }
}

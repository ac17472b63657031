using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Sutazai.Inference.Providers;

/// <summary>
/// Models served by an Ollama server. Chat goes through OllamaSharp's <see cref="OllamaSharp.OllamaApiClient"/>
/// (<c>/api/chat</c>); raw completion, listing and health use the REST API directly (<c>/api/generate</c> with
/// <c>raw: true</c>, <c>/api/tags</c>, <c>/api/ps</c>, <c>/api/show</c>, <c>/api/version</c>).
/// </summary>
public sealed class OllamaProvider : IModelProvider, IEmbeddingProvider, IDisposable
{
    public const string ProviderName = "ollama";

    /// <summary>Where Ollama listens by default; used when <see cref="OllamaOptions.Url"/> is empty.</summary>
    public const string DefaultUrl = "http://localhost:11434";

    /// <summary>
    /// Option names a caller may put in <see cref="ChatOptions.AdditionalProperties"/> to reach Ollama's
    /// <c>options</c> object (OllamaSharp honours the same names for chat).
    /// </summary>
    private static readonly HashSet<string> PassThroughOptions = new(StringComparer.Ordinal)
    {
        "num_ctx", "num_keep", "num_batch", "num_gpu", "main_gpu", "num_thread", "repeat_last_n", "repeat_penalty",
        "min_p", "typical_p", "tfs_z", "mirostat", "mirostat_eta", "mirostat_tau", "penalize_newline",
    };

    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(2);

    private readonly HttpClient _http;
    private readonly OllamaConnection _connection;
    private readonly ILogger _logger;

    /// <param name="options">Server address and request timeout (<c>Sutazai:Inference:Ollama</c>; <c>AutoDetect</c> is the caller's business, see <see cref="ProbeAsync"/>).</param>
    /// <param name="handler">Optional HTTP handler (tests, proxies); the provider does not dispose it.</param>
    /// <param name="logger">Optional logger for listing details that fail without failing the listing.</param>
    public OllamaProvider(OllamaOptions options, HttpMessageHandler? handler = null, ILogger<OllamaProvider>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ProviderHttp.ValidateTimeout(options.Timeout, "Sutazai:Inference:Ollama:Timeout");
        BaseUri = ProviderHttp.ParseBaseUrl(options.Url, DefaultUrl, "Sutazai:Inference:Ollama:Url");
        _http = handler is null ? new HttpClient() : new HttpClient(handler, disposeHandler: false);
        _http.BaseAddress = BaseUri;
        _http.Timeout = options.Timeout;
        _connection = new OllamaConnection(_http, BaseUri, options.Timeout);
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    public string Name => ProviderName;

    /// <summary>The server address, ending with '/'.</summary>
    public Uri BaseUri { get; }

    /// <summary>
    /// True when an Ollama server answers <c>GET {url}/api/version</c> within 2 seconds; for start-up auto-detection
    /// of <see cref="DefaultUrl"/>. Never throws for an unreachable or foreign server.
    /// </summary>
    public static async Task<bool> ProbeAsync(Uri url, HttpClient httpClient, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(url);
        ArgumentNullException.ThrowIfNull(httpClient);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ProbeTimeout);
        try
        {
            using var response = await httpClient.GetAsync(new Uri(ProviderHttp.WithTrailingSlash(url), "api/version"), timeout.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                return false;
            }

            var body = await response.Content.ReadAsStringAsync(timeout.Token).ConfigureAwait(false);
            using var document = JsonDocument.Parse(body);
            return document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("version", out var version)
                && version.ValueKind == JsonValueKind.String;
        }
        catch (HttpRequestException)
        {
            return false;
        }
        catch (JsonException)
        {
            return false;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false; // Our 2-second limit, not the caller's token.
        }
    }

    /// <summary>
    /// <c>/api/tags</c> with <c>loaded</c> from <c>/api/ps</c> and <c>ContextLength</c> from <c>/api/show</c> (the
    /// model's trained context, <c>model_info["{arch}.context_length"]</c>; null when <c>/api/show</c> fails for a model).
    /// </summary>
    public async Task<IReadOnlyList<ModelInfo>> ListModelsAsync(CancellationToken cancellationToken)
    {
        List<(string Name, long? Size, string? Family, string? Quantization)> tags = [];
        using (var document = await GetJsonAsync("api/tags", cancellationToken).ConfigureAwait(false))
        {
            foreach (var model in Models(document.RootElement))
            {
                if (String(model, "name") is not { Length: > 0 } name)
                {
                    continue;
                }

                var details = model.TryGetProperty("details", out var d) && d.ValueKind == JsonValueKind.Object ? d : default;
                tags.Add((name, Int64(model, "size"), String(details, "family"), String(details, "quantization_level")));
            }
        }

        var loaded = new HashSet<string>(StringComparer.Ordinal);
        using (var document = await GetJsonAsync("api/ps", cancellationToken).ConfigureAwait(false))
        {
            foreach (var model in Models(document.RootElement))
            {
                foreach (var key in (ReadOnlySpan<string>)["name", "model"])
                {
                    if (String(model, key) is { Length: > 0 } name)
                    {
                        loaded.Add(name);
                    }
                }
            }
        }

        var contextLengths = new int?[tags.Count];
        await Parallel.ForEachAsync(
            Enumerable.Range(0, tags.Count),
            new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = cancellationToken },
            async (i, ct) => contextLengths[i] = await GetContextLengthAsync(tags[i].Name, ct).ConfigureAwait(false)).ConfigureAwait(false);

        return tags
            .Select((t, i) => new ModelInfo(t.Name, Name, t.Size, contextLengths[i], t.Family, t.Quantization, loaded.Contains(t.Name)))
            .ToList();
    }

    public IChatClient GetChatClient(string modelId)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(modelId);
        return new OllamaChatClient(new OllamaWireClient(_connection, modelId), _connection, modelId);
    }

    /// <summary>
    /// <c>POST /api/generate</c> with <c>raw: true</c> (no template) and <c>stream: true</c>. One update per non-empty
    /// <c>response</c> chunk, then a final update with <see cref="UsageContent"/> (prompt_eval_count / eval_count) and
    /// the finish reason (<c>done_reason</c> "length" → <see cref="ChatFinishReason.Length"/>, otherwise Stop).
    /// </summary>
    public async IAsyncEnumerable<ChatResponseUpdate> CompleteAsync(
        string modelId, string prompt, ChatOptions? options, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(modelId);
        ArgumentNullException.ThrowIfNull(prompt);

        var body = new JsonObject
        {
            ["model"] = modelId,
            ["prompt"] = prompt,
            ["raw"] = true,
            ["stream"] = true,
        };
        var ollamaOptions = ToOllamaOptions(options);
        if (ollamaOptions.Count > 0)
        {
            body["options"] = ollamaOptions;
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, "api/generate")
        {
            Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        using var response = await _connection.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, modelId, cancellationToken).ConfigureAwait(false);

        Stream stream;
        try
        {
            stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ProviderHttp.IsTransportFailure(ex))
        {
            throw _connection.Dropped(modelId, ex);
        }

        using var reader = new StreamReader(stream, Encoding.UTF8);
        var responseId = Guid.NewGuid().ToString("N");
        while (true)
        {
            string? line;
            try
            {
                line = await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ProviderHttp.IsTransportFailure(ex))
            {
                throw _connection.Dropped(modelId, ex);
            }

            if (line is null)
            {
                break;
            }

            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            var chunk = ParseGenerateLine(line, modelId);
            if (chunk.Text.Length > 0)
            {
                yield return new ChatResponseUpdate(ChatRole.Assistant, chunk.Text)
                {
                    ModelId = modelId,
                    ResponseId = responseId,
                    MessageId = responseId,
                    CreatedAt = chunk.CreatedAt,
                };
            }

            if (chunk.Done)
            {
                yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(chunk.Usage ?? new UsageDetails())])
                {
                    FinishReason = chunk.FinishReason,
                    ModelId = modelId,
                    ResponseId = responseId,
                    MessageId = responseId,
                    CreatedAt = chunk.CreatedAt,
                };
                yield break;
            }
        }

        cancellationToken.ThrowIfCancellationRequested();
        throw _connection.EndedEarly(modelId);
    }

    /// <summary>
    /// <c>POST /api/embed</c> with every input at once; <c>prompt_eval_count</c> is the token count. A model Ollama says
    /// cannot embed gives <see cref="EmbeddingsNotSupportedException"/>.
    /// </summary>
    public async Task<EmbeddingResult> EmbedAsync(string modelId, IReadOnlyList<string> inputs, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(modelId);
        ArgumentNullException.ThrowIfNull(inputs);
        var body = new JsonObject
        {
            ["model"] = modelId,
            ["input"] = new JsonArray(inputs.Select(i => (JsonNode?)JsonValue.Create(i)).ToArray()),
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/embed")
        {
            Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        string text;
        try
        {
            using var response = await _connection.SendAsync(request, HttpCompletionOption.ResponseContentRead, modelId, cancellationToken).ConfigureAwait(false);
            text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (InferenceUnavailableException ex) when (ex.Message.Contains("support embeddings", StringComparison.OrdinalIgnoreCase))
        {
            throw new EmbeddingsNotSupportedException($"Ollama model '{modelId}' does not support embeddings.", ex);
        }

        try
        {
            using var document = JsonDocument.Parse(text);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("embeddings", out var embeddings) || embeddings.ValueKind != JsonValueKind.Array)
            {
                throw new InferenceUnavailableException($"Ollama at {_connection.Display} answered /api/embed without an \"embeddings\" array.");
            }

            var vectors = embeddings.EnumerateArray()
                .Select(e => e.EnumerateArray().Select(v => v.GetSingle()).ToArray())
                .ToList();
            if (vectors.Count != inputs.Count)
            {
                throw new InferenceUnavailableException($"Ollama at {_connection.Display} returned {vectors.Count} embeddings for {inputs.Count} inputs.");
            }

            return new EmbeddingResult(vectors, Int64(root, "prompt_eval_count") ?? 0);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            throw new InferenceUnavailableException($"Ollama at {_connection.Display} sent an /api/embed answer that is not valid: {ex.Message}", ex);
        }
    }

    /// <summary><c>GET /api/version</c> within 5 seconds.</summary>
    public async Task<ProviderHealth> CheckHealthAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ProviderHttp.HealthTimeout);
        try
        {
            using var document = await GetJsonAsync("api/version", timeout.Token).ConfigureAwait(false);
            var version = String(document.RootElement, "version");
            return version is null
                ? new ProviderHealth(Name, false, $"{_connection.Display} answered /api/version without a version; it does not look like Ollama.")
                : new ProviderHealth(Name, true, $"Ollama {version} at {_connection.Display}");
        }
        catch (InferenceUnavailableException ex)
        {
            return new ProviderHealth(Name, false, ex.Message);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new ProviderHealth(Name, false,
                $"Ollama at {_connection.Display} did not answer /api/version within {ProviderHttp.TimeoutText(ProviderHttp.HealthTimeout)}.");
        }
    }

    public void Dispose() => _http.Dispose();

    /// <summary>ChatOptions → Ollama's <c>options</c> object, the same names OllamaSharp uses for chat.</summary>
    internal static JsonObject ToOllamaOptions(ChatOptions? options)
    {
        var result = new JsonObject();
        if (options is null)
        {
            return result;
        }

        if (options.Temperature is { } temperature)
        {
            result["temperature"] = temperature;
        }

        if (options.TopP is { } topP)
        {
            result["top_p"] = topP;
        }

        if (options.TopK is { } topK)
        {
            result["top_k"] = topK;
        }

        if (options.Seed is { } seed)
        {
            result["seed"] = seed;
        }

        if (options.MaxOutputTokens is { } maxOutputTokens)
        {
            result["num_predict"] = maxOutputTokens;
        }

        if (options.StopSequences is { Count: > 0 } stop)
        {
            result["stop"] = new JsonArray(stop.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray());
        }

        if (options.FrequencyPenalty is { } frequencyPenalty)
        {
            result["frequency_penalty"] = frequencyPenalty;
        }

        if (options.PresencePenalty is { } presencePenalty)
        {
            result["presence_penalty"] = presencePenalty;
        }

        if (options.AdditionalProperties is { } extra)
        {
            foreach (var (key, value) in extra)
            {
                if (value is not null && PassThroughOptions.Contains(key))
                {
                    result[key] = JsonSerializer.SerializeToNode(value, value.GetType());
                }
            }
        }

        return result;
    }

    private GenerateChunk ParseGenerateLine(string line, string modelId)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line);
        }
        catch (JsonException ex)
        {
            throw new InferenceUnavailableException($"Ollama at {_connection.Display} sent a line that is not JSON while generating with model '{modelId}': {ex.Message}", ex);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new InferenceUnavailableException($"Ollama at {_connection.Display} sent an unexpected line while generating with model '{modelId}'.");
            }

            if (String(root, "error") is { } error)
            {
                throw new InferenceUnavailableException($"Ollama at {_connection.Display} failed while generating with model '{modelId}': {error}");
            }

            var text = String(root, "response") ?? string.Empty;
            var done = root.TryGetProperty("done", out var doneElement) && doneElement.ValueKind == JsonValueKind.True;
            var createdAt = root.TryGetProperty("created_at", out var created) && created.ValueKind == JsonValueKind.String
                && created.TryGetDateTimeOffset(out var parsed) ? parsed : (DateTimeOffset?)null;
            if (!done)
            {
                return new GenerateChunk(text, false, null, null, createdAt);
            }

            var input = Int64(root, "prompt_eval_count");
            var output = Int64(root, "eval_count");
            var usage = new UsageDetails
            {
                InputTokenCount = input,
                OutputTokenCount = output,
                TotalTokenCount = input is null && output is null ? null : (input ?? 0) + (output ?? 0),
            };
            var finishReason = String(root, "done_reason") switch
            {
                null or "stop" => ChatFinishReason.Stop,
                "length" => ChatFinishReason.Length,
                var other => new ChatFinishReason(other),
            };
            return new GenerateChunk(text, true, usage, finishReason, createdAt);
        }
    }

    private async Task<int?> GetContextLengthAsync(string modelId, CancellationToken cancellationToken)
    {
        var body = new JsonObject { ["model"] = modelId };
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/show")
        {
            Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        try
        {
            using var response = await _connection.SendAsync(request, HttpCompletionOption.ResponseContentRead, modelId, cancellationToken).ConfigureAwait(false);
            var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            using var document = JsonDocument.Parse(text);
            return ContextLength(document.RootElement);
        }
        catch (Exception ex) when (ex is InferenceUnavailableException or ModelNotFoundException or JsonException)
        {
            // The listing still stands; only this model's context length is unknown.
            _logger.LogDebug(ex, "Ollama /api/show failed for {Model}; its context length stays unknown", modelId);
            return null;
        }
    }

    /// <summary><c>model_info["{general.architecture}.context_length"]</c>, or any <c>*.context_length</c> entry.</summary>
    internal static int? ContextLength(JsonElement showResponse)
    {
        if (showResponse.ValueKind != JsonValueKind.Object
            || !showResponse.TryGetProperty("model_info", out var info) || info.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        if (String(info, "general.architecture") is { } architecture
            && info.TryGetProperty(architecture + ".context_length", out var exact)
            && exact.ValueKind == JsonValueKind.Number && exact.TryGetInt32(out var value))
        {
            return value;
        }

        foreach (var property in info.EnumerateObject())
        {
            if (property.Name.EndsWith(".context_length", StringComparison.Ordinal) && property.Value.ValueKind == JsonValueKind.Number
                && property.Value.TryGetInt32(out var length))
            {
                return length;
            }
        }

        return null;
    }

    private async Task<JsonDocument> GetJsonAsync(string path, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        using var response = await _connection.SendAsync(request, HttpCompletionOption.ResponseContentRead, null, cancellationToken).ConfigureAwait(false);
        var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return JsonDocument.Parse(text);
        }
        catch (JsonException ex)
        {
            throw new InferenceUnavailableException($"{_connection.Display}/{path} did not return JSON; is this an Ollama server? ({ex.Message})", ex);
        }
    }

    private static IEnumerable<JsonElement> Models(JsonElement root) =>
        root.ValueKind == JsonValueKind.Object && root.TryGetProperty("models", out var models) && models.ValueKind == JsonValueKind.Array
            ? models.EnumerateArray().Where(m => m.ValueKind == JsonValueKind.Object).ToList()
            : [];

    private static string? String(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : null;

    private static long? Int64(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value)
        && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number)
            ? number
            : null;

    private readonly record struct GenerateChunk(string Text, bool Done, UsageDetails? Usage, ChatFinishReason? FinishReason, DateTimeOffset? CreatedAt);
}

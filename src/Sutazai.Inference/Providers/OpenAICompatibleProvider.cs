using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using OpenAI;

namespace Sutazai.Inference.Providers;

/// <summary>
/// Models served by an OpenAI-compatible server (vLLM, llama-server, OpenAI). Chat goes through the
/// Microsoft.Extensions.AI OpenAI adapter; <c>/models</c> and raw <c>/completions</c> use HttpClient directly.
/// </summary>
public sealed class OpenAICompatibleProvider : IModelProvider, IEmbeddingProvider, IDisposable
{
    public const string ProviderName = "openai";

    /// <summary>Used when <see cref="OpenAIOptions.BaseUrl"/> is empty.</summary>
    public const string DefaultBaseUrl = "https://api.openai.com/v1";

    /// <summary>
    /// Default per-request timeout: how long the server may take before it starts answering (for streams: until the
    /// response headers; for non-streamed chat: the whole answer), and the longest silence allowed inside a stream.
    /// </summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(5);

    private const string ModelsPath = "models";
    private const string CompletionsPath = "completions";
    private const string EmbeddingsPath = "embeddings";

    private readonly HttpClient _http;
    private readonly OpenAIConnection _connection;
    private readonly OpenAIClient _client;
    private readonly string? _defaultModel;

    /// <param name="options">Base URL, API key and default model (<c>Sutazai:Inference:OpenAI</c>).</param>
    /// <param name="handler">Optional HTTP handler (tests, proxies); the provider does not dispose it.</param>
    /// <param name="timeout">Per-request timeout; null means <see cref="DefaultTimeout"/>.</param>
    public OpenAICompatibleProvider(OpenAIOptions options, HttpMessageHandler? handler = null, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var requestTimeout = timeout ?? DefaultTimeout;
        ProviderHttp.ValidateTimeout(requestTimeout, nameof(timeout));
        BaseUri = ProviderHttp.ParseBaseUrl(options.BaseUrl, DefaultBaseUrl, "Sutazai:Inference:OpenAI:BaseUrl");
        _defaultModel = string.IsNullOrWhiteSpace(options.Model) ? null : options.Model.Trim();
        _http = handler is null ? new HttpClient() : new HttpClient(handler, disposeHandler: false);
        _http.BaseAddress = BaseUri;
        _http.Timeout = requestTimeout;
        _connection = new OpenAIConnection(BaseUri, string.IsNullOrEmpty(options.ApiKey) ? null : options.ApiKey, requestTimeout);
        _client = new OpenAIClient(
            new ApiKeyCredential(_connection.ApiKey ?? "unused"),
            new OpenAIClientOptions
            {
                Endpoint = new Uri(_connection.Display),
                Transport = new HttpClientPipelineTransport(_http),
                RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
                NetworkTimeout = requestTimeout,
            });
    }

    public string Name => ProviderName;

    /// <summary>The API root, ending with '/'.</summary>
    public Uri BaseUri { get; }

    /// <summary>
    /// <c>GET {BaseUrl}/models</c>. Every entry is <c>Loaded = true</c> (the server serves it); size, family and
    /// quantization are unknown; <c>ContextLength</c> is vLLM's <c>max_model_len</c> when present. A failing
    /// <c>/models</c> throws <see cref="InferenceUnavailableException"/>; the configured default model is not offered as
    /// a fallback, so a dead server never looks alive.
    /// </summary>
    public async Task<IReadOnlyList<ModelInfo>> ListModelsAsync(CancellationToken cancellationToken)
    {
        using var document = await GetModelsAsync(cancellationToken).ConfigureAwait(false);
        var models = new List<ModelInfo>();
        foreach (var entry in document.RootElement.GetProperty("data").EnumerateArray())
        {
            if (entry.ValueKind == JsonValueKind.Object && entry.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String
                && id.GetString() is { Length: > 0 } modelId)
            {
                int? contextLength = entry.TryGetProperty("max_model_len", out var max) && max.ValueKind == JsonValueKind.Number
                    && max.TryGetInt32(out var value) ? value : null;
                models.Add(new ModelInfo(modelId, Name, null, contextLength, null, null, true));
            }
        }

        return models;
    }

    /// <summary>A chat client for <paramref name="modelId"/>; an empty id means <see cref="OpenAIOptions.Model"/>.</summary>
    public IChatClient GetChatClient(string modelId)
    {
        var model = ResolveModel(modelId);
        return new OpenAICompatibleChatClient(_client.GetChatClient(model).AsIChatClient(), _connection, model);
    }

    /// <summary>
    /// <c>POST {BaseUrl}/completions</c> with <c>stream: true</c> and <c>stream_options.include_usage</c>: one update
    /// per non-empty text chunk, then a final update with the finish reason and, when the server sent usage,
    /// <see cref="UsageContent"/> (servers that ignore <c>include_usage</c> give no usage rather than invented numbers).
    /// </summary>
    public async IAsyncEnumerable<ChatResponseUpdate> CompleteAsync(
        string modelId, string prompt, ChatOptions? options, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var model = ResolveModel(modelId);
        var body = ToCompletionRequest(model, prompt, options, _connection.IsOfficialOpenAI);

        using var request = new HttpRequestMessage(HttpMethod.Post, CompletionsPath)
        {
            Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        _connection.Authorize(request);
        request.Headers.Accept.ParseAdd("text/event-stream");
        using var response = await SendAsync(request, HttpCompletionOption.ResponseHeadersRead, CompletionsPath, model, cancellationToken).ConfigureAwait(false);

        Stream stream;
        try
        {
            stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ProviderHttp.IsTransportFailure(ex))
        {
            throw _connection.Dropped(model, ex);
        }

        var responseId = Guid.NewGuid().ToString("N");
        var sawDone = false;
        ChatFinishReason? finishReason = null;
        UsageDetails? usage = null;
        await using (stream.ConfigureAwait(false))
        {
            var events = SseParser.Create(stream).EnumerateAsync(cancellationToken).GetAsyncEnumerator(cancellationToken);
            await using (events.ConfigureAwait(false))
            {
                while (true)
                {
                    string data;
                    try
                    {
                        if (!await events.MoveNextAsync().ConfigureAwait(false))
                        {
                            break;
                        }

                        data = events.Current.Data;
                    }
                    catch (Exception ex) when (ProviderHttp.IsTransportFailure(ex))
                    {
                        throw _connection.Dropped(model, ex);
                    }

                    if (data.Trim() == "[DONE]")
                    {
                        sawDone = true;
                        break;
                    }

                    if (string.IsNullOrWhiteSpace(data))
                    {
                        continue;
                    }

                    var chunk = ParseCompletionChunk(data, model);
                    responseId = chunk.Id ?? responseId;
                    finishReason = chunk.FinishReason ?? finishReason;
                    usage = chunk.Usage ?? usage;
                    if (chunk.Text.Length > 0)
                    {
                        yield return new ChatResponseUpdate(ChatRole.Assistant, chunk.Text)
                        {
                            ModelId = chunk.Model ?? model,
                            ResponseId = responseId,
                            MessageId = responseId,
                        };
                    }
                }
            }
        }

        cancellationToken.ThrowIfCancellationRequested();
        if (!sawDone && finishReason is null)
        {
            throw _connection.EndedEarly(model);
        }

        yield return new ChatResponseUpdate(ChatRole.Assistant, usage is null ? [] : [new UsageContent(usage)])
        {
            FinishReason = finishReason,
            ModelId = model,
            ResponseId = responseId,
            MessageId = responseId,
        };
    }

    /// <summary>
    /// <c>POST {BaseUrl}/embeddings</c> with every input at once (<c>encoding_format: "float"</c>); vectors are put back
    /// in input order by their <c>index</c>. A server without embeddings (501, or an error saying so, as llama-server
    /// started without <c>--embeddings</c> answers) gives <see cref="EmbeddingsNotSupportedException"/>.
    /// </summary>
    public async Task<EmbeddingResult> EmbedAsync(string modelId, IReadOnlyList<string> inputs, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var model = ResolveModel(modelId);
        var body = new JsonObject
        {
            ["model"] = model,
            ["input"] = new JsonArray(inputs.Select(i => (JsonNode?)JsonValue.Create(i)).ToArray()),
            ["encoding_format"] = "float",
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, EmbeddingsPath)
        {
            Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        _connection.Authorize(request);
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw _connection.Unreachable(ex);
        }
        catch (TaskCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw _connection.TimedOut(EmbeddingsPath, ex);
        }

        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                var error = ProviderHttp.ErrorText(text, response.ReasonPhrase);
                if ((int)response.StatusCode == 501 || error.Contains("support embeddings", StringComparison.OrdinalIgnoreCase))
                {
                    throw new EmbeddingsNotSupportedException($"The OpenAI-compatible server at {_connection.Display} does not serve embeddings for '{model}': {error}");
                }

                throw _connection.FromStatus((int)response.StatusCode, response.ReasonPhrase, error, EmbeddingsPath, model);
            }

            return ParseEmbeddings(text, inputs.Count);
        }
    }

    private EmbeddingResult ParseEmbeddings(string text, int expected)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Array)
            {
                throw new InferenceUnavailableException($"{_connection.Display}/{EmbeddingsPath} did not return an OpenAI embedding list (no \"data\" array).");
            }

            var vectors = new float[expected][];
            var position = 0;
            foreach (var entry in data.EnumerateArray())
            {
                var index = entry.TryGetProperty("index", out var i) && i.ValueKind == JsonValueKind.Number ? i.GetInt32() : position;
                if (index < 0 || index >= expected)
                {
                    throw new InferenceUnavailableException($"{_connection.Display}/{EmbeddingsPath} returned an embedding for input {index} of {expected}.");
                }

                vectors[index] = entry.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray();
                position++;
            }

            if (vectors.Any(v => v is null))
            {
                throw new InferenceUnavailableException($"{_connection.Display}/{EmbeddingsPath} returned {position} embeddings for {expected} inputs.");
            }

            long tokens = root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object ? Int64(usage, "prompt_tokens") ?? 0 : 0;
            return new EmbeddingResult(vectors, tokens);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or KeyNotFoundException or FormatException)
        {
            throw new InferenceUnavailableException($"{_connection.Display}/{EmbeddingsPath} sent an answer that is not a valid embedding list: {ex.Message}", ex);
        }
    }

    /// <summary><c>GET {BaseUrl}/models</c> within 5 seconds.</summary>
    public async Task<ProviderHealth> CheckHealthAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ProviderHttp.HealthTimeout);
        try
        {
            using var document = await GetModelsAsync(timeout.Token).ConfigureAwait(false);
            var ids = document.RootElement.GetProperty("data").EnumerateArray()
                .Select(m => m.ValueKind == JsonValueKind.Object && m.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null)
                .OfType<string>()
                .ToList();
            var shown = string.Join(", ", ids.Take(5)) + (ids.Count > 5 ? ", …" : string.Empty);
            return new ProviderHealth(Name, true, $"OpenAI-compatible server at {_connection.Display}: {ids.Count} model(s) ({shown})");
        }
        catch (InferenceUnavailableException ex)
        {
            return new ProviderHealth(Name, false, ex.Message);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new ProviderHealth(Name, false,
                $"The OpenAI-compatible server at {_connection.Display} did not answer /models within {ProviderHttp.TimeoutText(ProviderHttp.HealthTimeout)}.");
        }
    }

    public void Dispose() => _http.Dispose();

    /// <summary>The <c>/completions</c> request body for <paramref name="options"/>.</summary>
    internal static JsonObject ToCompletionRequest(string model, string prompt, ChatOptions? options, bool officialOpenAI)
    {
        var body = new JsonObject
        {
            ["model"] = model,
            ["prompt"] = prompt,
            ["stream"] = true,
            ["stream_options"] = new JsonObject { ["include_usage"] = true },
        };
        if (options is null)
        {
            return body;
        }

        if (options.Temperature is { } temperature)
        {
            body["temperature"] = temperature;
        }

        if (options.TopP is { } topP)
        {
            body["top_p"] = topP;
        }

        if (options.TopK is { } topK && !officialOpenAI)
        {
            body["top_k"] = topK;
        }

        if (options.Seed is { } seed)
        {
            body["seed"] = seed;
        }

        if (options.MaxOutputTokens is { } maxTokens)
        {
            body["max_tokens"] = maxTokens;
        }

        if (options.StopSequences is { Count: > 0 } stop)
        {
            body["stop"] = new JsonArray(stop.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray());
        }

        if (options.FrequencyPenalty is { } frequencyPenalty)
        {
            body["frequency_penalty"] = frequencyPenalty;
        }

        if (options.PresencePenalty is { } presencePenalty)
        {
            body["presence_penalty"] = presencePenalty;
        }

        return body;
    }

    private string ResolveModel(string? modelId)
    {
        if (!string.IsNullOrWhiteSpace(modelId))
        {
            return modelId;
        }

        return _defaultModel ?? throw new ArgumentException("No model id was given and Sutazai:Inference:OpenAI:Model is not set.", nameof(modelId));
    }

    private async Task<JsonDocument> GetModelsAsync(CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, ModelsPath);
        _connection.Authorize(request);
        using var response = await SendAsync(request, HttpCompletionOption.ResponseContentRead, ModelsPath, null, cancellationToken).ConfigureAwait(false);
        var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(text);
        }
        catch (JsonException ex)
        {
            throw new InferenceUnavailableException($"{_connection.Display}/{ModelsPath} did not return JSON; is Sutazai:Inference:OpenAI:BaseUrl the API root (usually ending in /v1)? ({ex.Message})", ex);
        }

        if (document.RootElement.ValueKind != JsonValueKind.Object
            || !document.RootElement.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Array)
        {
            document.Dispose();
            throw new InferenceUnavailableException($"{_connection.Display}/{ModelsPath} did not return an OpenAI model list (no \"data\" array).");
        }

        return document;
    }

    private async Task<HttpResponseMessage> SendAsync(
        HttpRequestMessage request, HttpCompletionOption completion, string path, string? modelId, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, completion, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw _connection.Unreachable(ex);
        }
        catch (TaskCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw _connection.TimedOut(path, ex);
        }

        if (response.IsSuccessStatusCode)
        {
            return response;
        }

        using (response)
        {
            var error = await ProviderHttp.ReadErrorTextAsync(response, cancellationToken).ConfigureAwait(false);
            throw _connection.FromStatus((int)response.StatusCode, response.ReasonPhrase, error, path, modelId);
        }
    }

    private CompletionChunk ParseCompletionChunk(string data, string model)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(data);
        }
        catch (JsonException ex)
        {
            throw new InferenceUnavailableException($"The OpenAI-compatible server at {_connection.Display} sent an event that is not JSON while completing with model '{model}': {ex.Message}", ex);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new InferenceUnavailableException($"The OpenAI-compatible server at {_connection.Display} sent an unexpected event while completing with model '{model}'.");
            }

            if (root.TryGetProperty("error", out _))
            {
                throw new InferenceUnavailableException(
                    $"The OpenAI-compatible server at {_connection.Display} failed while completing with model '{model}': {ProviderHttp.ErrorMessage(root) ?? root.GetRawText()}");
            }

            var text = new StringBuilder();
            ChatFinishReason? finishReason = null;
            if (root.TryGetProperty("choices", out var choices) && choices.ValueKind == JsonValueKind.Array)
            {
                foreach (var choice in choices.EnumerateArray())
                {
                    if (choice.ValueKind != JsonValueKind.Object)
                    {
                        continue;
                    }

                    if (choice.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String)
                    {
                        text.Append(t.GetString());
                    }

                    if (choice.TryGetProperty("finish_reason", out var f) && f.ValueKind == JsonValueKind.String && f.GetString() is { Length: > 0 } reason)
                    {
                        finishReason = reason switch
                        {
                            "stop" => ChatFinishReason.Stop,
                            "length" => ChatFinishReason.Length,
                            "content_filter" => ChatFinishReason.ContentFilter,
                            _ => new ChatFinishReason(reason),
                        };
                    }
                }
            }

            UsageDetails? usage = null;
            if (root.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object)
            {
                usage = new UsageDetails
                {
                    InputTokenCount = Int64(u, "prompt_tokens"),
                    OutputTokenCount = Int64(u, "completion_tokens"),
                    TotalTokenCount = Int64(u, "total_tokens"),
                };
            }

            return new CompletionChunk(text.ToString(), finishReason, usage, String(root, "id"), String(root, "model"));
        }
    }

    private static string? String(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static long? Int64(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number) ? number : null;

    private readonly record struct CompletionChunk(string Text, ChatFinishReason? FinishReason, UsageDetails? Usage, string? Id, string? Model);
}

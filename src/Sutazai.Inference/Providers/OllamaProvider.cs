using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using OllamaSharp.Models;
using OllamaSharp.Models.Exceptions;

namespace Sutazai.Inference.Providers;

/// <summary>
/// Models served by an Ollama server, every call through OllamaSharp's <see cref="OllamaSharp.OllamaApiClient"/>:
/// chat (<c>/api/chat</c>), raw completion (<c>/api/generate</c> with <c>raw: true</c>), embeddings (<c>/api/embed</c>),
/// listing (<c>/api/tags</c>, <c>/api/ps</c>, <c>/api/show</c>) and health (<c>/api/version</c>). Its HTTP goes through
/// <see cref="OllamaConnection"/>, which maps failures to Sutazai's exceptions with Ollama's own error text. Only the
/// start-up probe (<see cref="ProbeAsync"/>) reads <c>/api/version</c> by hand: it takes any client and must never throw.
/// </summary>
public sealed class OllamaProvider : IModelProvider, IEmbeddingProvider, IDisposable
{
    public const string ProviderName = "ollama";

    /// <summary>Where Ollama listens by default; used when <see cref="OllamaOptions.Url"/> is empty.</summary>
    public const string DefaultUrl = "http://localhost:11434";

    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(2);

    private readonly HttpClient _http;
    private readonly OllamaConnection _connection;
    private readonly OllamaWireClient _client;
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
        _client = new OllamaWireClient(_connection, string.Empty);
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
        var tags = (await CallAsync("api/tags", ct => _client.ListLocalModelsAsync(ct), cancellationToken).ConfigureAwait(false))
            .Where(m => !string.IsNullOrEmpty(m.Name))
            .ToList();
        var loaded = (await CallAsync("api/ps", ct => _client.ListRunningModelsAsync(ct), cancellationToken).ConfigureAwait(false))
            .SelectMany(m => new[] { m.Name, m.ModelName })
            .Where(n => !string.IsNullOrEmpty(n))
            .ToHashSet(StringComparer.Ordinal);

        var contextLengths = new int?[tags.Count];
        await Parallel.ForEachAsync(
            Enumerable.Range(0, tags.Count),
            new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = cancellationToken },
            async (i, ct) => contextLengths[i] = await GetContextLengthAsync(tags[i].Name, ct).ConfigureAwait(false)).ConfigureAwait(false);

        return tags
            .Select((t, i) => new ModelInfo(t.Name, Name, t.Size, contextLengths[i], t.Details?.Family, t.Details?.QuantizationLevel, loaded.Contains(t.Name)))
            .ToList();
    }

    public IChatClient GetChatClient(string modelId)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(modelId);
        return new OllamaChatClient(new OllamaWireClient(_connection, modelId), _connection, modelId);
    }

    /// <summary>
    /// <c>POST /api/generate</c> with <c>raw: true</c> (no template) and <c>stream: true</c>, through OllamaSharp's
    /// <c>GenerateAsync</c>. One update per non-empty <c>response</c> chunk, then a final update with
    /// <see cref="UsageContent"/> (prompt_eval_count / eval_count) and the finish reason (<c>done_reason</c> "length" →
    /// <see cref="ChatFinishReason.Length"/>, otherwise Stop).
    /// </summary>
    public async IAsyncEnumerable<ChatResponseUpdate> CompleteAsync(
        string modelId, string prompt, ChatOptions? options, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(modelId);
        ArgumentNullException.ThrowIfNull(prompt);

        var request = new GenerateRequest
        {
            Model = modelId,
            Prompt = prompt,
            Raw = true,
            Stream = true,
            Options = ToRequestOptions(options),
        };
        var responseId = Guid.NewGuid().ToString("N");
        var done = false;
        await foreach (var chunk in ProviderHttp.GuardStreamAsync(
            _client.GenerateAsync(request, cancellationToken),
            ex => TranslateStreamFailure(ex, modelId, cancellationToken),
            chunk => chunk is GenerateDoneResponseStream { Done: true },
            () => _connection.EndedEarly(modelId),
            cancellationToken).ConfigureAwait(false))
        {
            if (chunk is null || done)
            {
                continue;
            }

            var createdAt = chunk.CreatedAt;
            if (!string.IsNullOrEmpty(chunk.Response))
            {
                yield return new ChatResponseUpdate(ChatRole.Assistant, chunk.Response)
                {
                    ModelId = modelId,
                    ResponseId = responseId,
                    MessageId = responseId,
                    CreatedAt = createdAt,
                };
            }

            if (chunk is GenerateDoneResponseStream { Done: true } last)
            {
                done = true;
                var input = last.PromptEvalCount;
                var output = last.EvalCount;
                var usage = new UsageDetails { InputTokenCount = input, OutputTokenCount = output, TotalTokenCount = input + output };
                var finishReason = last.DoneReason switch
                {
                    null or "" or "stop" => ChatFinishReason.Stop,
                    "length" => ChatFinishReason.Length,
                    var other => new ChatFinishReason(other),
                };
                yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(usage)])
                {
                    FinishReason = finishReason,
                    ModelId = modelId,
                    ResponseId = responseId,
                    MessageId = responseId,
                    CreatedAt = createdAt,
                };
            }
        }
    }

    /// <summary>
    /// <c>POST /api/embed</c> with every input at once (OllamaSharp's <c>EmbedAsync</c>); <c>prompt_eval_count</c> is
    /// the token count. A model Ollama says cannot embed gives <see cref="EmbeddingsNotSupportedException"/>.
    /// </summary>
    public async Task<EmbeddingResult> EmbedAsync(string modelId, IReadOnlyList<string> inputs, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(modelId);
        ArgumentNullException.ThrowIfNull(inputs);
        EmbedResponse response;
        try
        {
            response = await CallAsync("api/embed", ct => _client.EmbedAsync(new EmbedRequest { Model = modelId, Input = [.. inputs] }, ct), cancellationToken)
                .ConfigureAwait(false);
        }
        catch (InferenceUnavailableException ex) when (ex.Message.Contains("support embeddings", StringComparison.OrdinalIgnoreCase))
        {
            throw new EmbeddingsNotSupportedException($"Ollama model '{modelId}' does not support embeddings.", ex);
        }

        if (response?.Embeddings is not { } vectors)
        {
            throw new InferenceUnavailableException($"Ollama at {_connection.Display} answered /api/embed without an \"embeddings\" array.");
        }

        if (vectors.Count != inputs.Count)
        {
            throw new InferenceUnavailableException($"Ollama at {_connection.Display} returned {vectors.Count} embeddings for {inputs.Count} inputs.");
        }

        return new EmbeddingResult(vectors.Select(v => v.ToArray()).ToList(), response.PromptEvalCount ?? 0);
    }

    /// <summary><c>GET /api/version</c> within 5 seconds.</summary>
    public async Task<ProviderHealth> CheckHealthAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ProviderHttp.HealthTimeout);
        try
        {
            var version = await CallAsync("api/version", ct => _client.GetVersionAsync(ct), timeout.Token).ConfigureAwait(false);
            return new ProviderHealth(Name, true, $"Ollama {version} at {_connection.Display}");
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

    public void Dispose()
    {
        _client.Dispose();
        _http.Dispose();
    }

    /// <summary>
    /// ChatOptions → OllamaSharp's <see cref="RequestOptions"/> (Ollama's <c>options</c>), the same names OllamaSharp
    /// maps for chat: temperature, top_p, top_k, seed, num_predict, stop, penalties, and Ollama option names
    /// (<see cref="OllamaOption"/>) in <see cref="ChatOptions.AdditionalProperties"/>. Null when nothing is set, so
    /// the request carries no <c>options</c> at all.
    /// </summary>
    internal static RequestOptions? ToRequestOptions(ChatOptions? options)
    {
        if (options is null)
        {
            return null;
        }

        var extra = options.AdditionalProperties;
        T? Extra<T>(OllamaOption option) where T : struct =>
            extra is not null && extra.TryGetValue(option.Name, out var value) && value is not null
                ? value is JsonElement element ? element.Deserialize<T>() : (T)Convert.ChangeType(value, typeof(T), System.Globalization.CultureInfo.InvariantCulture)
                : null;

        var result = new RequestOptions
        {
            Temperature = options.Temperature,
            TopP = options.TopP,
            TopK = options.TopK,
            Seed = options.Seed is { } seed ? (int)seed : null,
            NumPredict = options.MaxOutputTokens,
            Stop = options.StopSequences is { Count: > 0 } stop ? [.. stop] : null,
            FrequencyPenalty = options.FrequencyPenalty,
            PresencePenalty = options.PresencePenalty,
            NumCtx = Extra<int>(OllamaOption.NumCtx),
            NumKeep = Extra<int>(OllamaOption.NumKeep),
            NumBatch = Extra<int>(OllamaOption.NumBatch),
            NumGpu = Extra<int>(OllamaOption.NumGpu),
            MainGpu = Extra<int>(OllamaOption.MainGpu),
            NumThread = Extra<int>(OllamaOption.NumThread),
            RepeatLastN = Extra<int>(OllamaOption.RepeatLastN),
            RepeatPenalty = Extra<float>(OllamaOption.RepeatPenalty),
            MinP = Extra<float>(OllamaOption.MinP),
            TypicalP = Extra<float>(OllamaOption.TypicalP),
            TfsZ = Extra<float>(OllamaOption.TfsZ),
            MiroStat = Extra<int>(OllamaOption.MiroStat),
            MiroStatEta = Extra<float>(OllamaOption.MiroStatEta),
            MiroStatTau = Extra<float>(OllamaOption.MiroStatTau),
            PenalizeNewline = Extra<bool>(OllamaOption.PenalizeNewline),
        };
        object?[] set =
        [
            result.Temperature, result.TopP, result.TopK, result.Seed, result.NumPredict, result.Stop, result.FrequencyPenalty, result.PresencePenalty,
            result.NumCtx, result.NumKeep, result.NumBatch, result.NumGpu, result.MainGpu, result.NumThread, result.RepeatLastN, result.RepeatPenalty,
            result.MinP, result.TypicalP, result.TfsZ, result.MiroStat, result.MiroStatEta, result.MiroStatTau, result.PenalizeNewline,
        ];
        return set.Any(v => v is not null) ? result : null;
    }

    /// <summary>One OllamaSharp call with its failures as Sutazai's exceptions (transport and status errors are mapped on the wire).</summary>
    private async Task<T> CallAsync<T>(string path, Func<CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        try
        {
            return await call(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is JsonException or OllamaException or FormatException or ArgumentException)
        {
            throw new InferenceUnavailableException($"{_connection.Display}/{path} did not answer as Ollama does; is this an Ollama server? ({ex.Message})", ex);
        }
    }

    private Exception? TranslateStreamFailure(Exception ex, string modelId, CancellationToken cancellationToken) => ex switch
    {
        InferenceUnavailableException or ModelNotFoundException => null,
        OperationCanceledException when cancellationToken.IsCancellationRequested => null,
        OllamaException => new InferenceUnavailableException($"Ollama at {_connection.Display} failed while generating with model '{modelId}': {ex.Message}", ex),
        JsonException => new InferenceUnavailableException($"Ollama at {_connection.Display} sent a line that is not JSON while generating with model '{modelId}': {ex.Message}", ex),
        _ when ProviderHttp.IsTransportFailure(ex) => _connection.Dropped(modelId, ex),
        _ => null,
    };

    private async Task<int?> GetContextLengthAsync(string modelId, CancellationToken cancellationToken)
    {
        try
        {
            var show = await CallAsync("api/show", ct => _client.ShowModelAsync(new ShowModelRequest { Model = modelId }, ct), cancellationToken).ConfigureAwait(false);
            return ContextLength(show.Info);
        }
        catch (Exception ex) when (ex is InferenceUnavailableException or ModelNotFoundException)
        {
            // The listing still stands; only this model's context length is unknown.
            _logger.LogDebug(ex, "Ollama /api/show failed for {Model}; its context length stays unknown", modelId);
            return null;
        }
    }

    /// <summary><c>model_info["{general.architecture}.context_length"]</c>, or any <c>*.context_length</c> entry.</summary>
    internal static int? ContextLength(OllamaSharp.Models.ModelInfo? info)
    {
        if (info?.ExtraInfo is not { } extra)
        {
            return null;
        }

        if (info.Architecture is { } architecture && extra.TryGetValue(architecture + ".context_length", out var exact) && Int32(exact) is { } value)
        {
            return value;
        }

        foreach (var (key, entry) in extra)
        {
            if (key.EndsWith(".context_length", StringComparison.Ordinal) && Int32(entry) is { } length)
            {
                return length;
            }
        }

        return null;
    }

    private static int? Int32(object? value) => value switch
    {
        JsonElement { ValueKind: JsonValueKind.Number } element when element.TryGetInt32(out var number) => number,
        int number => number,
        long number and >= int.MinValue and <= int.MaxValue => (int)number,
        _ => null,
    };
}

using Microsoft.Extensions.AI;

namespace Sutazai.Inference;

/// <summary>A model one provider can run, as listed by <c>GET /api/v1/models</c>.</summary>
public sealed record ModelInfo(
    string Id,
    string Provider,
    long? SizeBytes,
    int? ContextLength,
    string? Family,
    string? Quantization,
    bool Loaded);

/// <summary>Health of one provider, reported by readiness.</summary>
public sealed record ProviderHealth(string Provider, bool Available, string Detail);

/// <summary>
/// One inference backend (llama.cpp in-process, Ollama, an OpenAI-compatible server). Chat goes through
/// <see cref="IChatClient"/> so any Microsoft.Extensions.AI consumer can use it; raw completion continues a text
/// as is, without a chat template.
/// </summary>
public interface IModelProvider
{
    /// <summary><c>llamacpp</c>, <c>ollama</c> or <c>openai</c>.</summary>
    string Name { get; }

    Task<IReadOnlyList<ModelInfo>> ListModelsAsync(CancellationToken cancellationToken);

    /// <summary>A chat client for one of this provider's models; messages go through the model's chat template.</summary>
    IChatClient GetChatClient(string modelId);

    /// <summary>
    /// Continues <paramref name="prompt"/> as is (no template). Updates carry <see cref="TextContent"/> deltas; the last
    /// carries <see cref="UsageContent"/> and a <see cref="ChatResponseUpdate.FinishReason"/>.
    /// </summary>
    IAsyncEnumerable<ChatResponseUpdate> CompleteAsync(string modelId, string prompt, ChatOptions? options, CancellationToken cancellationToken);

    Task<ProviderHealth> CheckHealthAsync(CancellationToken cancellationToken);
}

/// <summary>A provider that can count a model's tokens exactly (used to fit conversations into the context).</summary>
public interface ITokenCounter
{
    Task<int> CountTokensAsync(string modelId, string text, CancellationToken cancellationToken);
}

/// <summary>The backend refused or could not be reached; the message says what to do.</summary>
public sealed class InferenceUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The input does not fit the model's context: a client error (400), never an unavailable server.</summary>
public sealed class PromptTooLongException(string modelId, int promptTokens, int contextTokens)
    : Exception($"The prompt is {promptTokens} tokens but model '{modelId}' holds at most {contextTokens}. Shorten it, or use a model with a longer context.")
{
    public string ModelId { get; } = modelId;

    public int PromptTokens { get; } = promptTokens;

    public int ContextTokens { get; } = contextTokens;
}

/// <summary>The named model is not offered by any configured provider.</summary>
public sealed class ModelNotFoundException(string modelId)
    : Exception($"No model '{modelId}' is available. GET /api/v1/models lists the models you can use.")
{
    public string ModelId { get; } = modelId;
}

/// <summary>Embedding vectors for a list of inputs, in input order, and the tokens the inputs took.</summary>
public sealed record EmbeddingResult(IReadOnlyList<float[]> Embeddings, long InputTokens);

/// <summary>
/// Optional capability of an <see cref="IModelProvider"/>: turning text into embedding vectors. Kept apart from
/// <see cref="IModelProvider"/> so a provider without embeddings need not implement it.
/// </summary>
public interface IEmbeddingProvider
{
    /// <summary>
    /// One vector per input, in order. Throws <see cref="ModelNotFoundException"/> for an unknown model,
    /// <see cref="EmbeddingsNotSupportedException"/> when the model cannot embed, and
    /// <see cref="InferenceUnavailableException"/> when the backend is down.
    /// </summary>
    Task<EmbeddingResult> EmbedAsync(string modelId, IReadOnlyList<string> inputs, CancellationToken cancellationToken);
}

/// <summary>The model or its provider cannot produce embeddings (a request problem, not an outage).</summary>
public sealed class EmbeddingsNotSupportedException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>An input is unusable for the model (e.g. longer than its context); the message says which and why.</summary>
public sealed class InvalidInferenceInputException(string message, Exception? inner = null) : Exception(message, inner);

using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sutazai.Server.OpenAICompatible;

/// <summary>OpenAI's wire format: snake_case names, nulls written (OpenAI sends <c>"logprobs": null</c> and the like).</summary>
public static class OpenAIJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        NumberHandling = JsonNumberHandling.Strict,
    };
}

// Requests. Fields OpenAI allows in several shapes (string or array) are read as JsonElement and checked by hand.

public sealed record ChatCompletionRequest(
    string? Model,
    List<ChatMessageIn?>? Messages,
    float? Temperature,
    float? TopP,
    int? TopK,
    long? Seed,
    int? MaxTokens,
    int? MaxCompletionTokens,
    JsonElement? Stop,
    int? N,
    bool? Stream,
    StreamOptions? StreamOptions,
    JsonElement? Tools,
    bool? Logprobs);

public sealed record ChatMessageIn(string? Role, JsonElement? Content, string? Name);

public sealed record StreamOptions(bool? IncludeUsage);

public sealed record CompletionRequest(
    string? Model,
    JsonElement? Prompt,
    float? Temperature,
    float? TopP,
    int? TopK,
    long? Seed,
    int? MaxTokens,
    JsonElement? Stop,
    int? N,
    bool? Stream,
    StreamOptions? StreamOptions,
    bool? Echo,
    int? Logprobs);

public sealed record EmbeddingsRequest(string? Model, JsonElement? Input, string? EncodingFormat, int? Dimensions);

// Responses.

public sealed record OpenAIUsage(int PromptTokens, int CompletionTokens, int TotalTokens, PromptTokensDetails PromptTokensDetails);

public sealed record PromptTokensDetails(int CachedTokens);

public sealed record ChatCompletionResponse(string Id, string Object, long Created, string Model, IReadOnlyList<ChatChoice> Choices, OpenAIUsage Usage);

public sealed record ChatChoice(int Index, ChatMessageOut Message, object? Logprobs, string FinishReason);

public sealed record ChatMessageOut(string Role, string Content);

public sealed record ChatCompletionChunk(
    string Id, string Object, long Created, string Model, IReadOnlyList<ChatChunkChoice> Choices,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] OpenAIUsage? Usage);

public sealed record ChatChunkChoice(int Index, ChatDelta Delta, object? Logprobs, string? FinishReason);

public sealed record ChatDelta(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Role,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Content);

public sealed record TextCompletionResponse(
    string Id, string Object, long Created, string Model, IReadOnlyList<TextChoice> Choices,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] OpenAIUsage? Usage);

public sealed record TextChoice(string Text, int Index, object? Logprobs, string? FinishReason);

public sealed record ModelList(string Object, IReadOnlyList<ModelEntry> Data);

public sealed record ModelEntry(string Id, string Object, long Created, string OwnedBy);

public sealed record EmbeddingList(string Object, IReadOnlyList<EmbeddingEntry> Data, string Model, EmbeddingUsage Usage);

/// <summary><c>Embedding</c> is a float array, or a base64 string of little-endian float32 with <c>encoding_format: "base64"</c>.</summary>
public sealed record EmbeddingEntry(string Object, int Index, object Embedding);

public sealed record EmbeddingUsage(long PromptTokens, long TotalTokens);

public sealed record OpenAIErrorBody(OpenAIError Error);

public sealed record OpenAIError(string Message, string Type, string? Param, string? Code);

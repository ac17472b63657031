namespace Sutazai.Server.Inference;

public sealed record GenerateRequest(string? Model, string? Prompt, List<GenerateMessage>? Messages, GenerateOptions? Options, bool? Stream);

public sealed record GenerateMessage(string? Role, string? Content);

public sealed record GenerateOptions(float? Temperature, float? TopP, int? TopK, long? Seed, int? MaxTokens, List<string>? Stop);

public sealed record UsageResponse(int PromptTokens, int CompletionTokens, int TotalTokens, int CachedPromptTokens);

public sealed record TimingsResponse(double TotalMs, double TimeToFirstTokenMs, double? QueueMs, double? PromptMs, double? GenerationMs, double TokensPerSecond);

public sealed record GenerateResponse(string Model, string Provider, string Text, string FinishReason, UsageResponse Usage, TimingsResponse Timings);

public sealed record GenerateDone(string Model, string Provider, string FinishReason, UsageResponse Usage, TimingsResponse Timings);

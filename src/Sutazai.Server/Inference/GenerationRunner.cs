using System.Diagnostics;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using Sutazai.Inference;
using Sutazai.Inference.LlamaCpp;
using Sutazai.Server.Hosting;

namespace Sutazai.Server.Inference;

/// <summary>Validates generation input and runs it on whichever provider holds the model, measuring as it goes.</summary>
public sealed class GenerationRunner(ModelCatalog catalog, IOptionsMonitor<InferenceOptions> options, SutazaiMetrics metrics)
{
    public const int MaxStopSequences = 8;
    public const int MaxStopLength = 64;
    private static readonly HashSet<string> Roles = ["system", "user", "assistant"];

    /// <summary>Field errors for a generate request (empty when valid).</summary>
    public Dictionary<string, string[]> Validate(GenerateRequest request)
    {
        var errors = new Dictionary<string, List<string>>();
        void Add(string field, string message)
        {
            if (!errors.TryGetValue(field, out var list)) errors[field] = list = [];
            list.Add(message);
        }

        var hasPrompt = request.Prompt is not null;
        var hasMessages = request.Messages is not null;
        if (hasPrompt == hasMessages) Add("prompt", "Give exactly one of 'prompt' (raw completion) or 'messages' (chat).");
        if (hasPrompt && request.Prompt!.Length == 0) Add("prompt", "The prompt is empty.");
        if (hasMessages)
        {
            if (request.Messages!.Count == 0) Add("messages", "Give at least one message.");
            for (var i = 0; i < request.Messages.Count; i++)
            {
                var m = request.Messages[i];
                if (m is null || m.Role is null || !Roles.Contains(m.Role)) Add($"messages[{i}].role", "Role must be 'system', 'user' or 'assistant'.");
                if (m?.Content is null) Add($"messages[{i}].content", "Content is required.");
            }
        }
        var maxChars = options.CurrentValue.MaxPromptChars;
        var chars = (long)(request.Prompt?.Length ?? 0) + (request.Messages?.Sum(m => (long)(m?.Content?.Length ?? 0)) ?? 0);
        if (chars > maxChars)
            Add(hasPrompt ? "prompt" : "messages", $"The prompt is {chars} characters; the limit is {maxChars} (Sutazai:Inference:MaxPromptChars).");
        ValidateOptions(request.Options, Add);
        return errors.ToDictionary(e => e.Key, e => e.Value.ToArray());
    }

    public void ValidateOptions(GenerateOptions? o, Action<string, string> add)
    {
        if (o is null) return;
        var limit = options.CurrentValue.MaxOutputTokensLimit;
        if (o.Temperature is < 0 or > 2) add("options.temperature", "Temperature must be between 0 and 2.");
        if (o.TopP is <= 0 or > 1) add("options.topP", "topP must be greater than 0 and at most 1.");
        if (o.TopK is < 0 or > 1000) add("options.topK", "topK must be between 0 and 1000 (0 disables it).");
        if (o.Seed is < 0 or > uint.MaxValue) add("options.seed", $"Seed must be between 0 and {uint.MaxValue}.");
        if (o.MaxTokens is < 1 || o.MaxTokens > limit) add("options.maxTokens", $"maxTokens must be between 1 and {limit}.");
        if (o.Stop is { } stop)
        {
            if (stop.Count > MaxStopSequences) add("options.stop", $"At most {MaxStopSequences} stop sequences.");
            if (stop.Any(s => string.IsNullOrEmpty(s) || s.Length > MaxStopLength)) add("options.stop", $"Stop sequences must be 1 to {MaxStopLength} characters.");
        }
    }

    public static ChatOptions ToChatOptions(GenerateOptions? o) => new()
    {
        Temperature = o?.Temperature,
        TopP = o?.TopP,
        TopK = o?.TopK,
        Seed = o?.Seed,
        MaxOutputTokens = o?.MaxTokens,
        StopSequences = o?.Stop,
    };

    /// <summary>A started generation: the resolved model and its stream of updates.</summary>
    public sealed class Run(ResolvedModel model, IAsyncEnumerable<ChatResponseUpdate> updates, SutazaiMetrics metrics)
    {
        private readonly long _started = Stopwatch.GetTimestamp();
        private long _firstToken;

        public ResolvedModel Model { get; } = model;

        public UsageDetails? Usage { get; private set; }

        public ChatFinishReason? FinishReason { get; private set; }

        public GenerationStats? Stats { get; private set; }

        /// <summary>Text deltas as they come; usage, finish reason and stats are captured on the way.</summary>
        public async IAsyncEnumerable<string> TextAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
        {
            var tags = new TagList { { "model", Model.ModelId }, { "provider", Model.Provider.Name } };
            var genAi = SutazaiMetrics.GenAiTags(Model.ModelId, Model.Provider.Name);
            var outcome = "error";
            metrics.InferenceStarted(tags);
            try
            {
                await foreach (var update in updates.WithCancellation(ct))
                {
                    if (update.FinishReason is { } reason) FinishReason = reason;
                    if (update.AdditionalProperties?.TryGetValue(LlamaCppProvider.GenerationStatsKey, out var stats) == true && stats is GenerationStats s) Stats = s;
                    foreach (var content in update.Contents)
                    {
                        if (content is UsageContent usage) Usage = usage.Details;
                    }
                    var text = update.Text;
                    if (text.Length == 0) continue;
                    if (_firstToken == 0)
                    {
                        _firstToken = Stopwatch.GetTimestamp();
                        metrics.TimeToFirstToken(Stopwatch.GetElapsedTime(_started, _firstToken).TotalSeconds, genAi);
                    }
                    yield return text;
                }
                outcome = "ok";
                if (_firstToken != 0) metrics.TimePerOutputToken(Stopwatch.GetElapsedTime(_firstToken).TotalSeconds, (int)(Usage?.OutputTokenCount ?? 0), genAi);
            }
            finally
            {
                if (ct.IsCancellationRequested) outcome = "cancelled";
                metrics.InferenceFinished(outcome, (int)(Usage?.OutputTokenCount ?? 0), tags);
            }
        }

        public UsageResponse UsageResponse()
        {
            var prompt = (int)(Usage?.InputTokenCount ?? 0);
            var completion = (int)(Usage?.OutputTokenCount ?? 0);
            return new UsageResponse(prompt, completion, prompt + completion, (int)(Usage?.CachedInputTokenCount ?? 0));
        }

        public TimingsResponse Timings()
        {
            var now = Stopwatch.GetTimestamp();
            var total = Stopwatch.GetElapsedTime(_started, now).TotalMilliseconds;
            var ttft = _firstToken == 0 ? total : Stopwatch.GetElapsedTime(_started, _firstToken).TotalMilliseconds;
            var completion = Usage?.OutputTokenCount ?? 0;
            var generationMs = Stats?.GenerationMs ?? Math.Max(0, total - ttft);
            var rate = generationMs > 0 ? completion / (generationMs / 1000.0) : 0;
            return new TimingsResponse(Math.Round(total, 2), Math.Round(ttft, 2), Stats?.QueueMs is { } q ? Math.Round(q, 2) : null,
                Stats?.PromptMs is { } p ? Math.Round(p, 2) : null, Math.Round(generationMs, 2), Math.Round(rate, 2));
        }

        public string FinishReasonName() => FinishReason?.Value ?? "stop";
    }

    public async Task<Run> StartAsync(GenerateRequest request, CancellationToken ct)
    {
        var model = await catalog.ResolveAsync(request.Model, ct);
        var messages = request.Messages?.Select(m => new ChatMessage(new ChatRole(m.Role!), m.Content)).ToList();
        return Start(model, messages, request.Prompt, request.Options, ct);
    }

    /// <summary>Starts chat over <paramref name="messages"/>, or raw completion of <paramref name="prompt"/>, on a resolved model.</summary>
    public Run Start(ResolvedModel model, IList<ChatMessage>? messages, string? prompt, GenerateOptions? generateOptions, CancellationToken ct)
    {
        var chatOptions = ToChatOptions(generateOptions);
        chatOptions.MaxOutputTokens ??= options.CurrentValue.DefaultMaxOutputTokens;
        var updates = prompt is not null
            ? model.CompleteAsync(prompt, chatOptions, ct)
            : model.ChatClient().GetStreamingResponseAsync(messages!, chatOptions, ct);
        return new Run(model, updates, metrics);
    }
}

using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using Sutazai.Data.Entities;
using Sutazai.Inference;
using Sutazai.Server.Inference;

namespace Sutazai.Server.Conversations;

/// <summary>The context-fitting step of a reply: the branch as chat messages that fit the model's context.</summary>
public sealed class ContextFitter(IOptionsMonitor<InferenceOptions> inference, ILogger<ContextFitter> logger)
{
    /// <summary>
    /// The branch as chat messages under the system prompt, trimmed from the oldest turn when it would not fit the
    /// model's context (counted exactly where the provider can, else estimated at ~3 characters a token, plus a few
    /// tokens of template per message); the newest user message is always kept, so one that cannot fit even alone
    /// throws <see cref="PromptTooLongException"/> (a client error).
    /// </summary>
    public async Task<List<ChatMessage>> FitAsync(List<ChatMessageEntity> branch, string? systemPrompt, ResolvedModel model, GenerateOptions? options, CancellationToken ct)
    {
        var turns = branch.Where(m => m.Role is "user" or "assistant" && (m.Role == "user" || (m.Status != MessageStatus.Error && m.Content.Length > 0)))
            .Select(m => new ChatMessage(new ChatRole(m.Role), m.Content)).ToList();
        var context = model.Info?.ContextLength ?? 4096;
        var reserve = Math.Min(options?.MaxTokens ?? inference.CurrentValue.DefaultMaxOutputTokens, context / 4);
        var counter = model.Provider as ITokenCounter;
        async Task<int> Count(string text) => (counter is null ? text.Length / 3 : await counter.CountTokensAsync(model.ModelId, text, ct)) + 8;
        var system = string.IsNullOrEmpty(systemPrompt) ? 0 : await Count(systemPrompt);
        var budget = context - reserve - system;
        var sizes = new List<int>();
        foreach (var turn in turns) sizes.Add(await Count(turn.Text));
        var needed = sizes.Count == 0 ? 0 : sizes[^1] + system;
        if (needed >= context) throw new PromptTooLongException(model.ModelId, needed, context);
        var dropped = 0;
        while (turns.Count > 1 && sizes.Sum() > budget)
        {
            turns.RemoveAt(0);
            sizes.RemoveAt(0);
            dropped++;
        }
        if (dropped > 0) logger.LogInformation("Left {Dropped} oldest message(s) out of the prompt to fit {Model}'s {Context}-token context", dropped, model.ModelId, context);
        if (!string.IsNullOrWhiteSpace(systemPrompt)) turns.Insert(0, new ChatMessage(ChatRole.System, systemPrompt));
        return turns;
    }
}

using Sutazai.Data.Entities;
using Sutazai.Server.Inference;

namespace Sutazai.Server.Conversations;

public sealed record CreateConversationRequest(string? Title, string? Model, string? SystemPrompt);

public sealed record UpdateConversationRequest(string? Title, bool? Pinned, bool? Archived, string? SystemPrompt, string? Model);

public sealed record PostMessageRequest(string? Content, string? Model, GenerateOptions? Options, Guid? ParentId, Guid? EditOf, List<Guid>? CollectionIds, bool? UseKnowledge);

public sealed record RegenerateRequest(string? Model, GenerateOptions? Options);

public sealed record BranchRequest(Guid? MessageId);

public sealed record ConversationResponse(
    Guid Id, string Title, string? Model, string? SystemPrompt, bool Pinned, bool Archived,
    int MessageCount, Guid? ActiveLeafId, DateTime CreatedAt, DateTime UpdatedAt, bool Generating)
{
    public static ConversationResponse From(Conversation c, bool generating) =>
        new(c.Id, c.Title, c.Model, c.SystemPrompt, c.Pinned, c.Archived, c.MessageCount, c.ActiveLeafId, c.CreatedAt, c.UpdatedAt, generating);
}

public sealed record MessageUsage(int? PromptTokens, int? CompletionTokens, int? CachedPromptTokens);

public sealed record MessageTimings(double? TimeToFirstTokenMs, double? TotalMs, double? TokensPerSecond);

/// <param name="SharedBy">Who shared the source with the asker (its owner's user name); null for the asker's own document.</param>
public sealed record Citation(int Index, Guid DocumentId, Guid ChunkId, string Title, int? Page, string? Heading, string Text, string? SharedBy = null);

public sealed record MessageResponse(
    Guid Id, Guid ConversationId, Guid? ParentId, string Role, string Content, string Status,
    string? Model, string? Provider, string? FinishReason, string? Error,
    MessageUsage Usage, MessageTimings Timings, DateTime CreatedAt,
    int SiblingIndex, int SiblingCount, IReadOnlyList<Guid> SiblingIds, IReadOnlyList<Citation> Citations)
{
    public static MessageResponse From(ChatMessageEntity m, IReadOnlyList<Guid>? siblings = null)
    {
        siblings ??= [m.Id];
        return new(m.Id, m.ConversationId, m.ParentId, m.Role, m.Content, m.Status, m.Model, m.Provider, m.FinishReason, m.Error,
            new MessageUsage(m.PromptTokens, m.CompletionTokens, m.CachedPromptTokens),
            new MessageTimings(m.TimeToFirstTokenMs, m.TotalMs, m.TokensPerSecond), m.CreatedAt,
            Math.Max(0, siblings.ToList().IndexOf(m.Id)), siblings.Count, siblings,
            string.IsNullOrEmpty(m.Citations) ? [] : System.Text.Json.JsonSerializer.Deserialize<List<Citation>>(m.Citations, System.Text.Json.JsonSerializerOptions.Web) ?? []);
    }
}

public sealed record ExchangeResponse(MessageResponse UserMessage, MessageResponse AssistantMessage);

public sealed record SearchHit(Guid ConversationId, string Title, Guid? MessageId, string Snippet, DateTime UpdatedAt);

/// <summary>Export format (also accepted by import).</summary>
public sealed record ConversationExport(
    string Format, string Title, string? Model, string? SystemPrompt, DateTime CreatedAt, IReadOnlyList<ExportedMessage> Messages);

public sealed record ExportedMessage(Guid Id, Guid? ParentId, string Role, string Content, string? Model, string Status, DateTime CreatedAt, bool Active);

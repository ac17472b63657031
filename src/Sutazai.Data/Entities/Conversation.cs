namespace Sutazai.Data.Entities;

/// <summary>A chat owned by one user. Its messages form a tree; <see cref="ActiveLeafId"/> picks the shown branch.</summary>
public sealed class Conversation
{
    public Guid Id { get; set; }

    public Guid UserId { get; set; }

    public string Title { get; set; } = "New chat";

    /// <summary>True once a user named it; automatic titling then leaves it alone.</summary>
    public bool TitleSetByUser { get; set; }

    /// <summary>Model used when a message names none.</summary>
    public string? Model { get; set; }

    public string? SystemPrompt { get; set; }

    public bool Pinned { get; set; }

    public bool Archived { get; set; }

    /// <summary>The last message of the active branch (null while empty).</summary>
    public Guid? ActiveLeafId { get; set; }

    public int MessageCount { get; set; }

    public DateTime CreatedAt { get; set; }

    public DateTime UpdatedAt { get; set; }
}

/// <summary>One message; <see cref="ParentId"/> links it into the conversation's tree (siblings are branches).</summary>
public sealed class ChatMessageEntity
{
    public Guid Id { get; set; }

    public Guid ConversationId { get; set; }

    public Guid? ParentId { get; set; }

    /// <summary><c>user</c>, <c>assistant</c> or <c>system</c>.</summary>
    public required string Role { get; set; }

    public string Content { get; set; } = "";

    /// <summary><c>complete</c>, <c>streaming</c>, <c>stopped</c>, <c>error</c> or <c>interrupted</c>.</summary>
    public string Status { get; set; } = MessageStatus.Complete;

    /// <summary>The node (<c>NodeIdentity</c>) generating a <c>streaming</c> reply, so a restarted node settles only its own.</summary>
    public string? GeneratingNode { get; set; }

    public string? Model { get; set; }

    public string? Provider { get; set; }

    public string? FinishReason { get; set; }

    public string? Error { get; set; }

    public int? PromptTokens { get; set; }

    public int? CompletionTokens { get; set; }

    public int? CachedPromptTokens { get; set; }

    public double? TimeToFirstTokenMs { get; set; }

    public double? TotalMs { get; set; }

    public double? TokensPerSecond { get; set; }

    /// <summary>JSON array of the knowledge sources given to the model for this reply (RAG), numbered as cited.</summary>
    public string? Citations { get; set; }

    public DateTime CreatedAt { get; set; }

    public DateTime UpdatedAt { get; set; }
}

public static class MessageStatus
{
    public const string Complete = "complete";
    public const string Streaming = "streaming";
    public const string Stopped = "stopped";
    public const string Error = "error";

    /// <summary>The process generating the reply ended without finishing it (a crash, kill -9, power loss).</summary>
    public const string Interrupted = "interrupted";
}

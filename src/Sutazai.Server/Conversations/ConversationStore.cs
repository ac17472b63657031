using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Server.Inference;

namespace Sutazai.Server.Conversations;

public abstract record ImportResult
{
    public sealed record Imported(Conversation Conversation) : ImportResult;

    public sealed record Invalid(Dictionary<string, string[]> Errors) : ImportResult;
}

/// <summary>
/// Owner-scoped conversations and their message trees: CRUD, branches, search, export and import. Every transport
/// (REST, /ws/chat, /ws/jarvis, the Chat page) reads and writes conversations here; <see cref="ReplyPipeline"/> adds
/// replies to them.
/// </summary>
public sealed class ConversationStore(AppDbContext db, ReplyHub hub, TimeProvider time, IOptionsMonitor<ConversationOptions> settings)
{
    public const int MaxTitleLength = 200;
    public const int MaxSystemPromptLength = 8000;

    private DateTime Now => time.GetUtcNow().UtcDateTime;

    /// <summary>Field errors for a title and system prompt (null: not being set), keyed by field, for every transport.</summary>
    public static Dictionary<string, string[]> ValidateFields(string? title, string? systemPrompt)
    {
        var errors = new Dictionary<string, string[]>();
        if (title is { Length: > MaxTitleLength }) errors["title"] = [$"Title must be at most {MaxTitleLength} characters."];
        if (title is not null && title.Trim().Length == 0) errors["title"] = ["Title must not be empty."];
        if (systemPrompt is { Length: > MaxSystemPromptLength }) errors["systemPrompt"] = [$"System prompt must be at most {MaxSystemPromptLength} characters."];
        return errors;
    }

    /// <summary>The user's conversations, pinned first, then most recently updated.</summary>
    public async Task<(List<Conversation> Items, int Total)> ListAsync(Guid userId, bool archived, int page, int pageSize, CancellationToken ct)
    {
        var query = db.Conversations.AsNoTracking().Where(c => c.UserId == userId && c.Archived == archived);
        var total = await query.CountAsync(ct);
        var items = await query.OrderByDescending(c => c.Pinned).ThenByDescending(c => c.UpdatedAt).ThenByDescending(c => c.Id)
            .Skip((Math.Max(1, page) - 1) * pageSize).Take(pageSize).ToListAsync(ct);
        return (items, total);
    }

    public Task<Conversation?> FindAsync(Guid userId, Guid id, CancellationToken ct) =>
        db.Conversations.FirstOrDefaultAsync(c => c.Id == id && c.UserId == userId, ct);

    public async Task<Conversation> CreateAsync(Guid userId, CreateConversationRequest request, CancellationToken ct)
    {
        var defaultPrompt = await db.Users.Where(u => u.Id == userId).Select(u => u.DefaultSystemPrompt).FirstOrDefaultAsync(ct);
        var conversation = new Conversation
        {
            Id = Guid.NewGuid(),
            UserId = userId,
            Title = string.IsNullOrWhiteSpace(request.Title) ? "New chat" : request.Title.Trim(),
            TitleSetByUser = !string.IsNullOrWhiteSpace(request.Title),
            Model = string.IsNullOrWhiteSpace(request.Model) ? null : request.Model.Trim(),
            SystemPrompt = request.SystemPrompt ?? defaultPrompt,
            CreatedAt = Now,
            UpdatedAt = Now,
        };
        db.Conversations.Add(conversation);
        await db.SaveChangesAsync(ct);
        return conversation;
    }

    public Task<List<ChatMessageEntity>> AllMessagesAsync(Guid conversationId, CancellationToken ct) =>
        db.Messages.AsNoTracking().Where(m => m.ConversationId == conversationId).OrderBy(m => m.CreatedAt).ThenBy(m => m.Id).ToListAsync(ct);

    public List<MessageResponse> ActiveBranch(IReadOnlyList<ChatMessageEntity> all, Guid? leafId) => new ConversationTree(all).ActiveBranch(leafId);

    /// <summary>My conversations whose title or any message contains <paramref name="q"/> (case-insensitive), newest first.</summary>
    public async Task<List<SearchHit>> SearchAsync(Guid userId, string q, CancellationToken ct)
    {
        var pattern = "%" + q.Trim().ToLowerInvariant().Replace("\\", "\\\\", StringComparison.Ordinal).Replace("%", "\\%", StringComparison.Ordinal).Replace("_", "\\_", StringComparison.Ordinal) + "%";
        var titleHits = await db.Conversations.AsNoTracking()
            .Where(c => c.UserId == userId && EF.Functions.Like(c.Title.ToLower(), pattern, "\\"))
            .OrderByDescending(c => c.UpdatedAt).Take(50)
            .Select(c => new SearchHit(c.Id, c.Title, null, c.Title, c.UpdatedAt)).ToListAsync(ct);
        var messageHits = await (from m in db.Messages.AsNoTracking()
                                 join c in db.Conversations.AsNoTracking() on m.ConversationId equals c.Id
                                 where c.UserId == userId && EF.Functions.Like(m.Content.ToLower(), pattern, "\\")
                                 orderby m.CreatedAt descending
                                 select new { c.Id, c.Title, MessageId = m.Id, m.Content, c.UpdatedAt }).Take(50).ToListAsync(ct);
        var needle = q.Trim();
        return titleHits.Concat(messageHits.Select(h => new SearchHit(h.Id, h.Title, h.MessageId, Snippet(h.Content, needle), h.UpdatedAt))).ToList();
    }

    private static string Snippet(string content, string needle)
    {
        var at = content.IndexOf(needle, StringComparison.OrdinalIgnoreCase);
        var start = Math.Max(0, at - 60);
        var end = Math.Min(content.Length, (at < 0 ? 0 : at) + needle.Length + 60);
        return (start > 0 ? "…" : "") + content[start..end] + (end < content.Length ? "…" : "");
    }

    /// <summary>Rename, pin, archive, set model or system prompt (fields left null stay as they are; "" clears model and prompt).</summary>
    public async Task UpdateAsync(Conversation conversation, UpdateConversationRequest request, CancellationToken ct)
    {
        if (request.Title is not null)
        {
            conversation.Title = request.Title.Trim();
            conversation.TitleSetByUser = true;
        }
        if (request.Pinned is { } pinned) conversation.Pinned = pinned;
        if (request.Archived is { } archived) conversation.Archived = archived;
        if (request.SystemPrompt is not null) conversation.SystemPrompt = request.SystemPrompt.Length == 0 ? null : request.SystemPrompt;
        if (request.Model is not null) conversation.Model = request.Model.Length == 0 ? null : request.Model;
        conversation.UpdatedAt = Now;
        await db.SaveChangesAsync(ct);
    }

    /// <summary>Deletes a conversation with all its messages, stopping its running reply first.</summary>
    public async Task DeleteAsync(Conversation conversation, CancellationToken ct)
    {
        if (hub.Get(conversation.Id, conversation.UserId) is { } running)
        {
            await running.Stop.CancelAsync();
            await running.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10), ct);
        }
        await db.Messages.Where(m => m.ConversationId == conversation.Id).ExecuteDeleteAsync(ct);
        await db.Conversations.Where(c => c.Id == conversation.Id).ExecuteDeleteAsync(ct);
    }

    public sealed record ExportFile(byte[] Content, string ContentType, string FileName);

    /// <summary>The conversation as Markdown (the active branch) or JSON (every message, for import); null for another format.</summary>
    public async Task<ExportFile?> ExportAsync(Conversation conversation, string? format, System.Text.Json.JsonSerializerOptions json, CancellationToken ct)
    {
        var all = await AllMessagesAsync(conversation.Id, ct);
        var branch = new ConversationTree(all).Branch(conversation.ActiveLeafId);
        var active = branch.Select(m => m.Id).ToHashSet();
        var fileName = new string(conversation.Title.Select(ch => char.IsLetterOrDigit(ch) ? ch : '-').ToArray()).Trim('-');
        if (fileName.Length == 0) fileName = "conversation";
        switch (format?.ToLowerInvariant())
        {
            case "markdown" or "md":
                var md = new System.Text.StringBuilder();
                md.Append("# ").Append(conversation.Title).Append("\n\n");
                if (!string.IsNullOrWhiteSpace(conversation.SystemPrompt)) md.Append("> System: ").Append(conversation.SystemPrompt.Replace("\n", "\n> ", StringComparison.Ordinal)).Append("\n\n");
                foreach (var m in branch)
                {
                    md.Append("## ").Append(m.Role == "user" ? "User" : "Assistant");
                    if (m.Model is not null) md.Append(" (").Append(m.Model).Append(')');
                    if (m.Status != MessageStatus.Complete) md.Append(" — ").Append(m.Status);
                    md.Append("\n\n").Append(m.Content).Append("\n\n");
                }
                return new ExportFile(System.Text.Encoding.UTF8.GetBytes(md.ToString()), "text/markdown; charset=utf-8", fileName + ".md");
            case "json" or null:
                var export = new ConversationExport(ConversationImport.Format, conversation.Title, conversation.Model, conversation.SystemPrompt, conversation.CreatedAt,
                    all.Select(m => new ExportedMessage(m.Id, m.ParentId, m.Role, m.Content, m.Model, m.Status, m.CreatedAt, active.Contains(m.Id))).ToList());
                return new ExportFile(System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(export, json), "application/json", fileName + ".json");
            default:
                return null;
        }
    }

    /// <summary>
    /// Stores an exported conversation as a new one of <paramref name="userId"/>, with fresh ids (so importing twice,
    /// or someone else's export, never collides with existing rows) — or nothing at all when the export is refused.
    /// </summary>
    public async Task<ImportResult> ImportAsync(Guid userId, ConversationExport export, CancellationToken ct)
    {
        var errors = ConversationImport.Validate(export, settings.CurrentValue.MaxImportMessages, settings.CurrentValue.MaxMessageChars);
        if (errors.Count > 0) return new ImportResult.Invalid(errors);

        var messages = export.Messages ?? [];
        var map = messages.ToDictionary(m => m.Id, _ => Guid.NewGuid());
        var conversation = new Conversation
        {
            Id = Guid.NewGuid(), UserId = userId, Title = export.Title.Trim(), TitleSetByUser = true, Model = export.Model,
            SystemPrompt = export.SystemPrompt, CreatedAt = export.CreatedAt == default ? Now : export.CreatedAt, UpdatedAt = Now,
            MessageCount = messages.Count,
        };
        // The active leaf: the active message no active message names as its parent.
        var activeParents = messages.Where(m => m.Active && m.ParentId is not null).Select(m => m.ParentId!.Value).ToHashSet();
        var leaf = messages.FirstOrDefault(m => m.Active && !activeParents.Contains(m.Id));
        conversation.ActiveLeafId = leaf is not null ? map[leaf.Id] : messages.Count > 0 ? map[messages[^1].Id] : null;
        db.Conversations.Add(conversation);
        foreach (var m in messages)
        {
            db.Messages.Add(new ChatMessageEntity
            {
                Id = map[m.Id], ConversationId = conversation.Id, ParentId = m.ParentId is { } p ? map[p] : null, Role = m.Role, Content = m.Content,
                Model = m.Model, Status = m.Status is MessageStatus.Complete or MessageStatus.Stopped or MessageStatus.Error or MessageStatus.Interrupted ? m.Status : MessageStatus.Complete,
                CreatedAt = m.CreatedAt == default ? Now : m.CreatedAt, UpdatedAt = Now,
            });
        }
        await db.SaveChangesAsync(ct);
        return new ImportResult.Imported(conversation);
    }

    /// <summary>Shows the branch through <paramref name="messageId"/> (its newest descendants); false when it is not a message of the conversation.</summary>
    public async Task<List<MessageResponse>?> SwitchBranchAsync(Conversation conversation, Guid messageId, CancellationToken ct)
    {
        var tree = new ConversationTree(await AllMessagesAsync(conversation.Id, ct));
        if (!tree.Contains(messageId)) return null;
        conversation.ActiveLeafId = tree.DeepestLeaf(messageId);
        await db.SaveChangesAsync(ct);
        return tree.ActiveBranch(conversation.ActiveLeafId);
    }

    /// <summary>
    /// Stores one exchange before its reply is generated: the new user message (null when re-answering a stored one)
    /// and the assistant message, streaming, as the conversation's active leaf.
    /// </summary>
    public async Task AddExchangeAsync(Conversation conversation, ChatMessageEntity? userMessage, ChatMessageEntity assistant, CancellationToken ct)
    {
        if (userMessage is not null)
        {
            db.Messages.Add(userMessage);
            conversation.MessageCount++;
        }
        db.Messages.Add(assistant);
        conversation.MessageCount++;
        conversation.ActiveLeafId = assistant.Id;
        conversation.UpdatedAt = Now;
        await db.SaveChangesAsync(ct);
    }

    public Task SetCitationsAsync(Guid messageId, IReadOnlyList<Citation> citations, CancellationToken ct) =>
        db.Messages.Where(m => m.Id == messageId).ExecuteUpdateAsync(
            s => s.SetProperty(m => m.Citations, System.Text.Json.JsonSerializer.Serialize(citations, System.Text.Json.JsonSerializerOptions.Web)), ct);

    /// <summary>Stores a reply's final text, status, usage and timings; returns it as every transport shows it.</summary>
    public async Task<MessageResponse> FinishReplyAsync(Guid conversationId, Guid messageId, string content, string status, string? error,
        string model, string provider, string? finishReason, UsageResponse? usage, TimingsResponse? timings)
    {
        var message = await db.Messages.FirstAsync(m => m.Id == messageId, CancellationToken.None);
        message.Content = content;
        message.Status = status;
        message.Error = error;
        message.Model = model;
        message.Provider = provider;
        message.FinishReason = finishReason;
        if (usage is not null)
        {
            message.PromptTokens = usage.PromptTokens;
            message.CompletionTokens = usage.CompletionTokens;
            message.CachedPromptTokens = usage.CachedPromptTokens;
        }
        if (timings is not null)
        {
            message.TimeToFirstTokenMs = timings.TimeToFirstTokenMs;
            message.TotalMs = timings.TotalMs;
            message.TokensPerSecond = timings.TokensPerSecond;
        }
        message.UpdatedAt = Now;
        await db.Conversations.Where(c => c.Id == conversationId).ExecuteUpdateAsync(s => s.SetProperty(c => c.UpdatedAt, Now), CancellationToken.None);
        await db.SaveChangesAsync(CancellationToken.None);
        var all = await db.Messages.AsNoTracking().Where(m => m.ConversationId == conversationId).ToListAsync(CancellationToken.None);
        return MessageResponse.From(message, new ConversationTree(all).Siblings(message));
    }

    /// <summary>Sets a generated title, unless the user named the chat meanwhile.</summary>
    public Task SetGeneratedTitleAsync(Guid conversationId, string title) =>
        db.Conversations.Where(c => c.Id == conversationId && !c.TitleSetByUser).ExecuteUpdateAsync(s => s.SetProperty(c => c.Title, title), CancellationToken.None);

    /// <summary>Marks a reply that could not be generated as failed, with why.</summary>
    public async Task RecordFailureAsync(Guid messageId, string? model, string? provider, string error, CancellationToken ct)
    {
        await db.Messages.Where(m => m.Id == messageId).ExecuteUpdateAsync(s => s
            .SetProperty(m => m.Status, MessageStatus.Error)
            .SetProperty(m => m.Error, error.Length > 2000 ? error[..2000] : error)
            .SetProperty(m => m.Model, model)
            .SetProperty(m => m.Provider, provider)
            .SetProperty(m => m.FinishReason, "error")
            .SetProperty(m => m.UpdatedAt, Now), ct);
    }
}

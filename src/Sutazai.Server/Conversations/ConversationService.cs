using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Inference;
using Sutazai.Server.Inference;

namespace Sutazai.Server.Conversations;

/// <summary>Ground a reply in documents: the given collections (mine or shared with me), or everything I may read.</summary>
public sealed record KnowledgeRequest(IReadOnlyList<Guid>? CollectionIds, int TopK = 5);

public abstract record StartReplyResult
{
    public sealed record Started(RunningReply Reply) : StartReplyResult;

    public sealed record Rejected(int Status, string Field, string Detail) : StartReplyResult
    {
        /// <summary>The error code a socket frame carries for this refusal.</summary>
        public string Code => Status switch { 400 => "context_length_exceeded", 404 => "not_found", 409 => "conflict", 422 => "invalid_request", 429 => "rate_limited", _ => "unavailable" };
    }
}

public abstract record ImportResult
{
    public sealed record Imported(Conversation Conversation) : ImportResult;

    public sealed record Invalid(Dictionary<string, string[]> Errors) : ImportResult;
}

/// <summary>Owner-scoped conversations, their message trees, and replies generated into them.</summary>
public sealed class ConversationService(
    AppDbContext db,
    ReplyHub hub,
    ModelCatalog catalog,
    IServiceScopeFactory scopes,
    IOptionsMonitor<InferenceOptions> inference,
    TimeProvider time,
    IHostApplicationLifetime lifetime,
    Knowledge.KnowledgeSearch search,
    Graph.GraphQueries graph,
    IOptionsMonitor<Graph.GraphOptions> graphOptions,
    IOptionsMonitor<ConversationOptions> settings,
    GenerationLimiter limiter,
    Hosting.NodeIdentity node,
    ILogger<ConversationService> logger)
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

    /// <summary>
    /// Appends a user message (or, with <paramref name="regenerateOf"/>, re-answers an existing one) and starts the
    /// assistant reply in the background. The user message is stored before anything can fail.
    /// </summary>
    public async Task<StartReplyResult> StartReplyAsync(
        Guid userId, Conversation conversation, string? content, Guid? parentId, Guid? regenerateOf,
        string? model, GenerateOptions? options, CancellationToken ct, bool edit, KnowledgeRequest? knowledge = null)
    {
        if (hub.IsRunning(conversation.Id))
            return new StartReplyResult.Rejected(StatusCodes.Status409Conflict, "", "A reply is being generated in this conversation; stop it (POST …/stop) or wait for it.");
        // Checked before anything is stored: a refused request leaves the conversation as it was.
        var slot = limiter.TryAcquire(userId);
        if (slot is null) return new StartReplyResult.Rejected(StatusCodes.Status429TooManyRequests, "", limiter.LimitDetail);
        try
        {
            var result = await StartReplyHoldingSlotAsync(userId, conversation, content, parentId, regenerateOf, model, options, ct, edit, knowledge, slot);
            if (result is StartReplyResult.Started) slot = null; // the generation releases it when it ends
            return result;
        }
        finally
        {
            slot?.Dispose();
        }
    }

    private async Task<StartReplyResult> StartReplyHoldingSlotAsync(
        Guid userId, Conversation conversation, string? content, Guid? parentId, Guid? regenerateOf,
        string? model, GenerateOptions? options, CancellationToken ct, bool edit, KnowledgeRequest? knowledge, IDisposable slot)
    {
        var all = await AllMessagesAsync(conversation.Id, ct);
        ChatMessageEntity userMessage;
        if (edit)
        {
            // An edit is a new user message beside the edited one (same parent): a sibling branch.
            var edited = all.FirstOrDefault(m => m.Id == regenerateOf && m.Role == "user");
            if (edited is null) return new StartReplyResult.Rejected(StatusCodes.Status422UnprocessableEntity, "editOf", "editOf must name a user message of this conversation.");
            parentId = edited.ParentId;
            regenerateOf = null;
        }
        if (regenerateOf is { } regenerateId)
        {
            var target = all.FirstOrDefault(m => m.Id == regenerateId);
            if (target is null) return new StartReplyResult.Rejected(StatusCodes.Status404NotFound, "messageId", "No message with that id in this conversation.");
            var question = target.Role == "user" ? target : all.FirstOrDefault(m => m.Id == target.ParentId && m.Role == "user");
            if (question is null) return new StartReplyResult.Rejected(StatusCodes.Status422UnprocessableEntity, "messageId", "Only an assistant reply to a user message (or the user message itself) can be regenerated.");
            userMessage = question;
        }
        else
        {
            if (string.IsNullOrWhiteSpace(content)) return new StartReplyResult.Rejected(StatusCodes.Status422UnprocessableEntity, "content", "Content is required.");
            var maxChars = settings.CurrentValue.MaxMessageChars;
            if (content.Length > maxChars) return new StartReplyResult.Rejected(StatusCodes.Status422UnprocessableEntity, "content", $"Content is {content.Length} characters; the limit is {maxChars} (Sutazai:Conversations:MaxMessageChars).");
            var parent = edit ? parentId : parentId ?? conversation.ActiveLeafId;
            if (!edit && parentId is { } explicitParent && all.All(m => m.Id != explicitParent))
                return new StartReplyResult.Rejected(StatusCodes.Status422UnprocessableEntity, "parentId", "parentId is not a message of this conversation.");
            userMessage = new ChatMessageEntity
            {
                Id = Guid.NewGuid(), ConversationId = conversation.Id, ParentId = parent, Role = "user", Content = content,
                Status = MessageStatus.Complete, CreatedAt = Now, UpdatedAt = Now,
            };
            db.Messages.Add(userMessage);
            conversation.MessageCount++;
            all.Add(userMessage);
        }

        var firstExchange = all.Count(m => m.Role == "user") == 1 && regenerateOf is null;
        var assistant = new ChatMessageEntity
        {
            Id = Guid.NewGuid(), ConversationId = conversation.Id, ParentId = userMessage.Id, Role = "assistant",
            Status = MessageStatus.Streaming, GeneratingNode = node.Id, CreatedAt = Now.AddTicks(1), UpdatedAt = Now,
        };
        db.Messages.Add(assistant);
        conversation.MessageCount++;
        conversation.ActiveLeafId = assistant.Id;
        conversation.UpdatedAt = Now;
        await db.SaveChangesAsync(ct);
        all.Add(assistant);

        var requested = string.IsNullOrWhiteSpace(model) ? conversation.Model : model;
        ResolvedModel resolved;
        try
        {
            resolved = await catalog.ResolveAsync(requested, ct);
        }
        catch (Exception ex) when (ex is ModelNotFoundException or NoModelAvailableException or InferenceUnavailableException)
        {
            var status = ex is ModelNotFoundException ? StatusCodes.Status404NotFound : StatusCodes.Status503ServiceUnavailable;
            await RecordFailureAsync(assistant.Id, requested, null, ex.Message, CancellationToken.None);
            return new StartReplyResult.Rejected(status, "model", ex.Message);
        }

        // Retrieval: the question's best chunks from the chosen collections become numbered sources the reply cites.
        var citations = knowledge is null ? [] : await RetrieveAsync(userId, userMessage.Content, knowledge, ct);
        var facts = citations.Count == 0 ? [] : await graph.FactsAsync(await Knowledge.KnowledgeAccess.ScopeAsync(db, userId, ct), userMessage.Content, graphOptions.CurrentValue.MaxFacts, ct);
        var systemPrompt = citations.Count == 0 ? conversation.SystemPrompt : GroundingPrompt.Build(conversation.SystemPrompt, citations, facts);
        if (citations.Count > 0)
        {
            await db.Messages.Where(m => m.Id == assistant.Id).ExecuteUpdateAsync(
                s => s.SetProperty(m => m.Citations, System.Text.Json.JsonSerializer.Serialize(citations, System.Text.Json.JsonSerializerOptions.Web)), ct);
        }
        var tree = new ConversationTree(all);
        List<ChatMessage> history;
        try
        {
            history = await BuildPromptAsync(tree.Branch(userMessage.Id), systemPrompt, resolved, options, ct);
        }
        catch (PromptTooLongException tooLong)
        {
            await RecordFailureAsync(assistant.Id, resolved.ModelId, resolved.Provider.Name, tooLong.Message, CancellationToken.None);
            return new StartReplyResult.Rejected(StatusCodes.Status400BadRequest, "content", tooLong.Message);
        }
        var reply = new RunningReply(conversation.Id, userId, assistant.Id);
        if (!hub.TryStart(reply))
        {
            await RecordFailureAsync(assistant.Id, resolved.ModelId, resolved.Provider.Name, "Another reply started at the same moment.", CancellationToken.None);
            return new StartReplyResult.Rejected(StatusCodes.Status409Conflict, "", "A reply is being generated in this conversation.");
        }
        reply.Publish(new ReplyEvent.Started(conversation.Id, MessageResponse.From(userMessage, tree.Siblings(userMessage)), assistant.Id, resolved.ModelId, resolved.Provider.Name));
        _ = Task.Run(() => GenerateAsync(reply, resolved, history, options, firstExchange && !conversation.TitleSetByUser, userMessage.Content, slot));
        return new StartReplyResult.Started(reply);
    }

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

    public const string UnreadableCollections = "Every collection must be yours or shared with you.";

    /// <summary>
    /// What a message asked to be grounded in — the given collections, or everything readable with
    /// <paramref name="useKnowledge"/> — or null for no grounding; the error names collections the user may not read.
    /// </summary>
    public async Task<(KnowledgeRequest? Request, string? Error)> KnowledgeForAsync(Guid userId, IReadOnlyCollection<Guid>? collectionIds, bool useKnowledge, CancellationToken ct)
    {
        if (collectionIds is not { Count: > 0 } && !useKnowledge) return (null, null);
        if (collectionIds is { Count: > 0 } && !await CanReadCollectionsAsync(userId, collectionIds, ct)) return (null, UnreadableCollections);
        return (new KnowledgeRequest(collectionIds?.ToList()), null);
    }

    /// <summary>True when every id names a collection the user owns or that is shared with them.</summary>
    private async Task<bool> CanReadCollectionsAsync(Guid userId, IReadOnlyCollection<Guid> ids, CancellationToken ct)
    {
        var scope = await Knowledge.KnowledgeAccess.ScopeAsync(db, userId, ct);
        var distinct = ids.Distinct().ToList();
        var readable = await db.Collections.CountAsync(c => distinct.Contains(c.Id) && (c.OwnerId == userId || scope.SharedCollectionIds.Contains(c.Id)), ct);
        return readable == distinct.Count;
    }

    private async Task<List<Citation>> RetrieveAsync(Guid userId, string question, KnowledgeRequest knowledge, CancellationToken ct)
    {
        var hits = new List<Knowledge.SearchResult>();
        if (knowledge.CollectionIds is { Count: > 0 } collections)
        {
            foreach (var collection in collections) hits.AddRange(await search.SearchAsync(userId, question, collection, knowledge.TopK, "hybrid", ct));
            hits = hits.OrderByDescending(h => h.Score).DistinctBy(h => h.ChunkId).Take(knowledge.TopK).ToList();
        }
        else
        {
            hits = await search.SearchAsync(userId, question, null, knowledge.TopK, "hybrid", ct);
        }
        return hits.Select((h, i) => new Citation(i + 1, h.DocumentId, h.ChunkId, h.Title, h.Page, h.Heading, h.Text, h.SharedBy)).ToList();
    }

    /// <summary>
    /// The branch as chat messages under the system prompt, trimmed from the oldest turn when it would not fit the
    /// model's context (counted exactly where the provider can, else estimated at ~3 characters a token, plus a few
    /// tokens of template per message); the newest user message is always kept.
    /// </summary>
    private async Task<List<ChatMessage>> BuildPromptAsync(List<ChatMessageEntity> branch, string? systemPrompt, ResolvedModel model, GenerateOptions? options, CancellationToken ct)
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
        // The newest message is always kept, so one that cannot fit even alone is refused (a client error).
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

    private async Task GenerateAsync(RunningReply reply, ResolvedModel model, List<ChatMessage> history, GenerateOptions? options, bool makeTitle, string firstUserMessage, IDisposable slot)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(reply.Stop.Token, lifetime.ApplicationStopping);
        var text = new System.Text.StringBuilder();
        await using var scope = scopes.CreateAsyncScope();
        var runner = scope.ServiceProvider.GetRequiredService<GenerationRunner>();
        GenerationRunner.Run? run = null;
        string status;
        string? error = null;
        try
        {
            run = runner.Start(model, history, null, options, linked.Token);
            await foreach (var delta in run.TextAsync(linked.Token))
            {
                text.Append(delta);
                reply.Publish(new ReplyEvent.Token(delta));
            }
            status = MessageStatus.Complete;
        }
        catch (OperationCanceledException) when (linked.IsCancellationRequested)
        {
            status = MessageStatus.Stopped;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            status = MessageStatus.Error;
            error = ex is InferenceUnavailableException or ModelNotFoundException or PromptTooLongException ? ex.Message : $"Generation failed: {ex.Message}";
            logger.LogWarning(ex, "Reply {Message} in conversation {Conversation} failed", reply.AssistantMessageId, reply.ConversationId);
        }

        ReplyEvent? final = null;
        try
        {
            var db2 = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var message = await db2.Messages.FirstAsync(m => m.Id == reply.AssistantMessageId, CancellationToken.None);
            message.Content = text.ToString();
            message.Status = status;
            message.Error = error;
            message.Model = model.ModelId;
            message.Provider = model.Provider.Name;
            message.FinishReason = status == MessageStatus.Stopped ? "stopped" : status == MessageStatus.Error ? "error" : run?.FinishReasonName();
            if (run is not null)
            {
                var usage = run.UsageResponse();
                var timings = run.Timings();
                message.PromptTokens = usage.PromptTokens;
                message.CompletionTokens = usage.CompletionTokens;
                message.CachedPromptTokens = usage.CachedPromptTokens;
                message.TimeToFirstTokenMs = timings.TimeToFirstTokenMs;
                message.TotalMs = timings.TotalMs;
                message.TokensPerSecond = timings.TokensPerSecond;
            }
            message.UpdatedAt = Now;
            await db2.Conversations.Where(c => c.Id == reply.ConversationId).ExecuteUpdateAsync(s => s.SetProperty(c => c.UpdatedAt, Now), CancellationToken.None);
            await db2.SaveChangesAsync(CancellationToken.None);
            var all = await db2.Messages.AsNoTracking().Where(m => m.ConversationId == reply.ConversationId).ToListAsync(CancellationToken.None);
            var response = MessageResponse.From(message, new ConversationTree(all).Siblings(message));
            final = status == MessageStatus.Error
                ? new ReplyEvent.Failed(StatusCodes.Status503ServiceUnavailable, error!, response)
                : new ReplyEvent.Ended(response);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            logger.LogError(ex, "Storing reply {Message} failed", reply.AssistantMessageId); // final stays null: a 500 below
        }
        finally
        {
            // Idle first, then tell the watchers: whoever sees the end can start the next reply at once.
            slot.Dispose();
            hub.Finish(reply);
            reply.Publish(final ?? new ReplyEvent.Failed(StatusCodes.Status500InternalServerError, "The reply could not be stored.", null));
        }

        if (makeTitle && status == MessageStatus.Complete) await GenerateTitleAsync(scope.ServiceProvider, reply.ConversationId, model, firstUserMessage);
    }

    /// <summary>A short title from the model after the first exchange, unless the user named the chat meanwhile.</summary>
    private async Task GenerateTitleAsync(IServiceProvider services, Guid conversationId, ResolvedModel model, string firstUserMessage)
    {
        try
        {
            var runner = services.GetRequiredService<GenerationRunner>();
            var prompt = new List<ChatMessage>
            {
                new(ChatRole.User, "Write a title of at most six words for a chat that begins with the message below. Answer with the title only.\n\n" +
                    (firstUserMessage.Length > 1000 ? firstUserMessage[..1000] : firstUserMessage)),
            };
            var run = runner.Start(model, prompt, null, new GenerateOptions(0.2f, null, null, null, 24, ["\n"]), lifetime.ApplicationStopping);
            var title = new System.Text.StringBuilder();
            await foreach (var delta in run.TextAsync(lifetime.ApplicationStopping)) title.Append(delta);
            var clean = CleanTitle(title.ToString());
            if (clean.Length == 0) return;
            var db2 = services.GetRequiredService<AppDbContext>();
            await db2.Conversations.Where(c => c.Id == conversationId && !c.TitleSetByUser)
                .ExecuteUpdateAsync(s => s.SetProperty(c => c.Title, clean), CancellationToken.None);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            logger.LogInformation("No title generated for conversation {Conversation}: {Message}", conversationId, ex.Message);
        }
    }

    public static string CleanTitle(string raw)
    {
        var line = raw.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "";
        line = line.Trim().Trim('"', '\'', '*', '#', ' ').Trim();
        if (line.StartsWith("Title:", StringComparison.OrdinalIgnoreCase)) line = line[6..].Trim();
        return line.Length > 80 ? line[..80].TrimEnd() : line;
    }

    private async Task RecordFailureAsync(Guid messageId, string? model, string? provider, string error, CancellationToken ct)
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

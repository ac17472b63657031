using Microsoft.Extensions.Options;
using Sutazai.Data.Entities;
using Sutazai.Inference;
using Sutazai.Server.Inference;

namespace Sutazai.Server.Conversations;

/// <summary>Why a reply was not started (each transport maps it once: <see cref="ReplyOutcomes"/>).</summary>
public enum ReplyRefusal
{
    /// <summary>A reply is already being generated in the conversation.</summary>
    Busy,

    /// <summary>The user holds every generation slot they may.</summary>
    RateLimited,

    /// <summary>A field is wrong (named by <see cref="StartReplyResult.Rejected.Field"/>).</summary>
    Invalid,

    /// <summary>A message the request names is not in the conversation.</summary>
    MessageNotFound,

    /// <summary>The requested model is not installed or offered.</summary>
    ModelNotFound,

    /// <summary>No model or provider can answer now.</summary>
    Unavailable,

    /// <summary>The newest message cannot fit the model's context even alone.</summary>
    PromptTooLong,
}

/// <summary>Why a started reply ended without a stored answer.</summary>
public enum ReplyFailure
{
    /// <summary>The model failed mid-way; the error is stored on the message.</summary>
    Generation,

    /// <summary>The reply could not be stored.</summary>
    Storage,

    /// <summary>The node generating it (a mirrored reply) stopped answering.</summary>
    NodeLost,
}

public abstract record StartReplyResult
{
    public sealed record Started(RunningReply Reply) : StartReplyResult;

    public sealed record Rejected(ReplyRefusal Reason, string Field, string Detail) : StartReplyResult;
}

/// <summary>The one mapping of reply outcomes to HTTP statuses and socket error codes.</summary>
public static class ReplyOutcomes
{
    public static int Status(ReplyRefusal reason) => reason switch
    {
        ReplyRefusal.Busy => StatusCodes.Status409Conflict,
        ReplyRefusal.RateLimited => StatusCodes.Status429TooManyRequests,
        ReplyRefusal.Invalid => StatusCodes.Status422UnprocessableEntity,
        ReplyRefusal.MessageNotFound or ReplyRefusal.ModelNotFound => StatusCodes.Status404NotFound,
        ReplyRefusal.PromptTooLong => StatusCodes.Status400BadRequest,
        _ => StatusCodes.Status503ServiceUnavailable,
    };

    /// <summary>The code a socket error frame carries.</summary>
    public static string Code(ReplyRefusal reason) => reason switch
    {
        ReplyRefusal.Busy => "conflict",
        ReplyRefusal.RateLimited => "rate_limited",
        ReplyRefusal.Invalid => "invalid_request",
        ReplyRefusal.MessageNotFound or ReplyRefusal.ModelNotFound => "not_found",
        ReplyRefusal.PromptTooLong => "context_length_exceeded",
        _ => "unavailable",
    };

    public static int Status(ReplyFailure failure) => failure == ReplyFailure.Storage ? StatusCodes.Status500InternalServerError : StatusCodes.Status503ServiceUnavailable;
}

/// <summary>
/// Starts a reply in a conversation, one step after another: check (busy, the user's slot, fields) → persist the
/// exchange → resolve the model → ground in documents (<see cref="ReplyGrounding"/>) → fit the context
/// (<see cref="ContextFitter"/>) → claim the conversation on the <see cref="ReplyHub"/> → generate, persist and publish
/// (<see cref="ReplyGenerator"/>). The user message is stored before anything can fail; a refusal after that is
/// recorded on the assistant message.
/// </summary>
public sealed class ReplyPipeline(
    ConversationStore store,
    ReplyHub hub,
    ModelCatalog catalog,
    ReplyGrounding grounding,
    ContextFitter fitter,
    ReplyGenerator generator,
    GenerationLimiter limiter,
    IOptionsMonitor<ConversationOptions> settings,
    Hosting.NodeIdentity node,
    TimeProvider time)
{
    private DateTime Now => time.GetUtcNow().UtcDateTime;

    /// <summary>
    /// Appends a user message (or, with <paramref name="regenerateOf"/>, re-answers an existing one; with
    /// <paramref name="edit"/>, answers an edited copy of it beside the original) and starts the assistant reply.
    /// </summary>
    public async Task<StartReplyResult> StartReplyAsync(
        Guid userId, Conversation conversation, string? content, Guid? parentId, Guid? regenerateOf,
        string? model, GenerateOptions? options, CancellationToken ct, bool edit, KnowledgeRequest? knowledge = null)
    {
        if (hub.IsRunning(conversation.Id))
            return new StartReplyResult.Rejected(ReplyRefusal.Busy, "", "A reply is being generated in this conversation; stop it (POST …/stop) or wait for it.");
        // Checked before anything is stored: a refused request leaves the conversation as it was.
        var slot = limiter.TryAcquire(userId);
        if (slot is null) return new StartReplyResult.Rejected(ReplyRefusal.RateLimited, "", limiter.LimitDetail);
        try
        {
            var result = await StartHoldingSlotAsync(userId, conversation, content, parentId, regenerateOf, model, options, ct, edit, knowledge, slot);
            if (result is StartReplyResult.Started) slot = null; // the generation releases it when it ends
            return result;
        }
        finally
        {
            slot?.Dispose();
        }
    }

    private async Task<StartReplyResult> StartHoldingSlotAsync(
        Guid userId, Conversation conversation, string? content, Guid? parentId, Guid? regenerateOf,
        string? model, GenerateOptions? options, CancellationToken ct, bool edit, KnowledgeRequest? knowledge, IDisposable slot)
    {
        // Persist the exchange.
        var all = await store.AllMessagesAsync(conversation.Id, ct);
        ChatMessageEntity userMessage;
        ChatMessageEntity? newUserMessage = null;
        if (edit)
        {
            // An edit is a new user message beside the edited one (same parent): a sibling branch.
            var edited = all.FirstOrDefault(m => m.Id == regenerateOf && m.Role == "user");
            if (edited is null) return new StartReplyResult.Rejected(ReplyRefusal.Invalid, "editOf", "editOf must name a user message of this conversation.");
            parentId = edited.ParentId;
            regenerateOf = null;
        }
        if (regenerateOf is { } regenerateId)
        {
            var target = all.FirstOrDefault(m => m.Id == regenerateId);
            if (target is null) return new StartReplyResult.Rejected(ReplyRefusal.MessageNotFound, "messageId", "No message with that id in this conversation.");
            var question = target.Role == "user" ? target : all.FirstOrDefault(m => m.Id == target.ParentId && m.Role == "user");
            if (question is null) return new StartReplyResult.Rejected(ReplyRefusal.Invalid, "messageId", "Only an assistant reply to a user message (or the user message itself) can be regenerated.");
            userMessage = question;
        }
        else
        {
            if (string.IsNullOrWhiteSpace(content)) return new StartReplyResult.Rejected(ReplyRefusal.Invalid, "content", "Content is required.");
            var maxChars = settings.CurrentValue.MaxMessageChars;
            if (content.Length > maxChars) return new StartReplyResult.Rejected(ReplyRefusal.Invalid, "content", $"Content is {content.Length} characters; the limit is {maxChars} (Sutazai:Conversations:MaxMessageChars).");
            var parent = edit ? parentId : parentId ?? conversation.ActiveLeafId;
            if (!edit && parentId is { } explicitParent && all.All(m => m.Id != explicitParent))
                return new StartReplyResult.Rejected(ReplyRefusal.Invalid, "parentId", "parentId is not a message of this conversation.");
            userMessage = newUserMessage = new ChatMessageEntity
            {
                Id = Guid.NewGuid(), ConversationId = conversation.Id, ParentId = parent, Role = "user", Content = content,
                Status = MessageStatus.Complete, CreatedAt = Now, UpdatedAt = Now,
            };
            all.Add(userMessage);
        }
        var firstExchange = all.Count(m => m.Role == "user") == 1 && regenerateOf is null;
        var assistant = new ChatMessageEntity
        {
            Id = Guid.NewGuid(), ConversationId = conversation.Id, ParentId = userMessage.Id, Role = "assistant",
            Status = MessageStatus.Streaming, GeneratingNode = node.Id, CreatedAt = Now.AddTicks(1), UpdatedAt = Now,
        };
        await store.AddExchangeAsync(conversation, newUserMessage, assistant, ct);
        all.Add(assistant);

        // Resolve the model.
        var requested = string.IsNullOrWhiteSpace(model) ? conversation.Model : model;
        ResolvedModel resolved;
        try
        {
            resolved = await catalog.ResolveAsync(requested, ct);
        }
        catch (Exception ex) when (ex is ModelNotFoundException or NoModelAvailableException or InferenceUnavailableException)
        {
            await store.RecordFailureAsync(assistant.Id, requested, null, ex.Message, CancellationToken.None);
            return new StartReplyResult.Rejected(ex is ModelNotFoundException ? ReplyRefusal.ModelNotFound : ReplyRefusal.Unavailable, "model", ex.Message);
        }

        // Ground, then fit the context.
        var grounded = await grounding.GroundAsync(userId, userMessage.Content, conversation.SystemPrompt, knowledge, ct);
        if (grounded.Citations.Count > 0) await store.SetCitationsAsync(assistant.Id, grounded.Citations, ct);
        var tree = new ConversationTree(all);
        List<Microsoft.Extensions.AI.ChatMessage> history;
        try
        {
            history = await fitter.FitAsync(tree.Branch(userMessage.Id), grounded.SystemPrompt, resolved, options, ct);
        }
        catch (PromptTooLongException tooLong)
        {
            await store.RecordFailureAsync(assistant.Id, resolved.ModelId, resolved.Provider.Name, tooLong.Message, CancellationToken.None);
            return new StartReplyResult.Rejected(ReplyRefusal.PromptTooLong, "content", tooLong.Message);
        }

        // Claim the conversation, then generate.
        var reply = new RunningReply(conversation.Id, userId, assistant.Id);
        if (!hub.TryStart(reply))
        {
            await store.RecordFailureAsync(assistant.Id, resolved.ModelId, resolved.Provider.Name, "Another reply started at the same moment.", CancellationToken.None);
            return new StartReplyResult.Rejected(ReplyRefusal.Busy, "", "A reply is being generated in this conversation.");
        }
        reply.Publish(new ReplyEvent.Started(conversation.Id, MessageResponse.From(userMessage, tree.Siblings(userMessage)), assistant.Id, resolved.ModelId, resolved.Provider.Name));
        generator.Start(reply, resolved, history, options, firstExchange && !conversation.TitleSetByUser ? userMessage.Content : null, slot);
        return new StartReplyResult.Started(reply);
    }
}

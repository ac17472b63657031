using Sutazai.Inference;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Server.Hosting;
using Sutazai.Server.Identity;
using Sutazai.Server.Inference;

namespace Sutazai.Server.Conversations;

public static class ConversationsApi
{
    public static IEndpointRouteBuilder MapConversationsApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/api/v1/conversations").WithTags("Conversations").RequireAuthorization(ScopePolicies.Chat);
        group.MapPost("", Create).WithSummary("Start a conversation.");
        group.MapGet("", List).WithSummary("My conversations, pinned then newest first, paged.");
        group.MapGet("/search", Search).WithSummary("Search my conversations' titles and messages.");
        group.MapPost("/import", Import).WithSummary("Import a conversation exported as JSON.");
        group.MapGet("/{id:guid}", Get);
        group.MapPatch("/{id:guid}", Update).WithSummary("Rename, pin, archive, set model or system prompt.");
        group.MapDelete("/{id:guid}", Delete).WithSummary("Delete a conversation with all its messages.");
        group.MapGet("/{id:guid}/messages", Messages).WithSummary("The active branch, root first, with sibling ids for branch navigation.");
        group.MapPost("/{id:guid}/messages", PostMessage).RequireRateLimiting(ServiceDefaults.ExpensiveRateLimitPolicy)
            .WithSummary("Add a user message and generate the reply (SSE with Accept: text/event-stream). parentId makes an edit branch.");
        group.MapPost("/{id:guid}/messages/{messageId:guid}/regenerate", Regenerate).RequireRateLimiting(ServiceDefaults.ExpensiveRateLimitPolicy).WithSummary("Answer a user message again as a new branch.");
        group.MapPost("/{id:guid}/branch", SwitchBranch).WithSummary("Show the branch through a message (its newest descendants).");
        group.MapPost("/{id:guid}/stop", Stop).WithSummary("Stop the reply being generated; the partial answer is kept, marked stopped.");
        group.MapGet("/{id:guid}/stream", Watch).WithSummary("Follow the reply being generated (SSE); 204 when none is.");
        group.MapGet("/{id:guid}/export", Export).WithSummary("Export as markdown or json.");
        return routes;
    }

    private static ProblemHttpResult NotFound() => Problems.NotFound("No conversation with that id.");

    private static async Task<Results<Created<ConversationResponse>, ProblemHttpResult>> Create(CreateConversationRequest request, HttpContext http, ConversationStore service, CancellationToken ct)
    {
        var errors = ConversationStore.ValidateFields(request.Title, request.SystemPrompt);
        if (errors.Count > 0) return Problems.Validation(errors);
        var conversation = await service.CreateAsync(http.User.UserId(), request, ct);
        return TypedResults.Created($"/api/v1/conversations/{conversation.Id}", ConversationResponse.From(conversation, false));
    }

    private static async Task<Ok<PagedResponse<ConversationResponse>>> List(HttpContext http, ConversationStore service, ReplyHub hub, int page = 1, int pageSize = 50, bool archived = false, CancellationToken ct = default)
    {
        page = Math.Max(1, page);
        pageSize = Math.Clamp(pageSize, 1, 200);
        var (items, total) = await service.ListAsync(http.User.UserId(), archived, page, pageSize, ct);
        return TypedResults.Ok(new PagedResponse<ConversationResponse>(items.Select(c => ConversationResponse.From(c, hub.IsRunning(c.Id))).ToList(), total, page, pageSize));
    }

    private static async Task<Results<Ok<ConversationResponse>, ProblemHttpResult>> Get(Guid id, HttpContext http, ConversationStore service, ReplyHub hub, CancellationToken ct) =>
        await service.FindAsync(http.User.UserId(), id, ct) is { } c ? TypedResults.Ok(ConversationResponse.From(c, hub.IsRunning(c.Id))) : NotFound();

    private static async Task<Results<Ok<ConversationResponse>, ProblemHttpResult>> Update(Guid id, UpdateConversationRequest request, HttpContext http, ConversationStore service, ReplyHub hub, CancellationToken ct)
    {
        var errors = ConversationStore.ValidateFields(request.Title, request.SystemPrompt);
        if (errors.Count > 0) return Problems.Validation(errors);
        var conversation = await service.FindAsync(http.User.UserId(), id, ct);
        if (conversation is null) return NotFound();
        await service.UpdateAsync(conversation, request, ct);
        return TypedResults.Ok(ConversationResponse.From(conversation, hub.IsRunning(conversation.Id)));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> Delete(Guid id, HttpContext http, ConversationStore service, CancellationToken ct)
    {
        var conversation = await service.FindAsync(http.User.UserId(), id, ct);
        if (conversation is null) return NotFound();
        await service.DeleteAsync(conversation, ct);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<List<SearchHit>>, ProblemHttpResult>> Search(string? q, HttpContext http, ConversationStore service, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(q) || q.Length > 200) return Problems.Validation("q", "Give a search text of 1 to 200 characters.");
        return TypedResults.Ok(await service.SearchAsync(http.User.UserId(), q, ct));
    }

    private static async Task<Results<Ok<List<MessageResponse>>, ProblemHttpResult>> Messages(Guid id, HttpContext http, ConversationStore service, CancellationToken ct)
    {
        var conversation = await service.FindAsync(http.User.UserId(), id, ct);
        if (conversation is null) return NotFound();
        var all = await service.AllMessagesAsync(id, ct);
        return TypedResults.Ok(service.ActiveBranch(all, conversation.ActiveLeafId));
    }

    private static async Task<IResult> PostMessage(Guid id, PostMessageRequest request, HttpContext http, ConversationStore service, ReplyPipeline replies, ReplyGrounding grounding, GenerationRunner runner, CancellationToken ct)
    {
        var errors = new Dictionary<string, List<string>>();
        runner.ValidateOptions(request.Options, (field, message) => AccountService.Add(errors, field, message));
        if (errors.Count > 0) return Problems.Validation(AccountService.Freeze(errors));
        var conversation = await service.FindAsync(http.User.UserId(), id, ct);
        if (conversation is null) return NotFound();
        if (request.EditOf is not null && request.ParentId is not null) return Problems.Validation("editOf", "Give either parentId or editOf, not both.");
        var (knowledge, unreadable) = await grounding.KnowledgeForAsync(http.User.UserId(), request.CollectionIds, request.UseKnowledge == true, ct);
        if (unreadable is not null) return Problems.Validation("collectionIds", unreadable);
        var result = await replies.StartReplyAsync(http.User.UserId(), conversation, request.Content, request.ParentId, request.EditOf, request.Model, request.Options, ct, edit: request.EditOf is not null, knowledge);
        return await RespondAsync(http, result);
    }

    private static async Task<IResult> Regenerate(Guid id, Guid messageId, RegenerateRequest? request, HttpContext http, ConversationStore service, ReplyPipeline replies, GenerationRunner runner, CancellationToken ct)
    {
        var errors = new Dictionary<string, List<string>>();
        runner.ValidateOptions(request?.Options, (field, message) => AccountService.Add(errors, field, message));
        if (errors.Count > 0) return Problems.Validation(AccountService.Freeze(errors));
        var conversation = await service.FindAsync(http.User.UserId(), id, ct);
        if (conversation is null) return NotFound();
        var result = await replies.StartReplyAsync(http.User.UserId(), conversation, null, null, messageId, request?.Model, request?.Options, ct, edit: false);
        return await RespondAsync(http, result);
    }

    /// <summary>SSE when asked for (the reply keeps going if the client leaves), otherwise the stored exchange when done.</summary>
    private static async Task<IResult> RespondAsync(HttpContext http, StartReplyResult result)
    {
        if (result is StartReplyResult.Rejected rejected)
        {
            if (rejected.Reason == ReplyRefusal.RateLimited)
                http.Response.Headers.RetryAfter = GenerationLimiter.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var status = ReplyOutcomes.Status(rejected.Reason);
            return rejected.Reason == ReplyRefusal.Invalid
                ? Problems.Validation(rejected.Field, rejected.Detail)
                : Problems.Status(status, ReasonPhrase(status), rejected.Detail);
        }
        var reply = ((StartReplyResult.Started)result).Reply;
        if (ServerSentEvents.Wanted(http.Request)) return await StreamAsync(http, reply);

        MessageResponse? user = null;
        await foreach (var e in reply.WatchAsync(http.RequestAborted))
        {
            switch (e)
            {
                case ReplyEvent.Started started:
                    user = started.UserMessage;
                    break;
                case ReplyEvent.Ended ended:
                    return TypedResults.Created($"/api/v1/conversations/{reply.ConversationId}/messages", new ExchangeResponse(user!, ended.Message));
                case ReplyEvent.Failed failed:
                    var status = ReplyOutcomes.Status(failed.Failure);
                    return Problems.Status(status, ReasonPhrase(status), failed.Detail,
                        new Dictionary<string, object?> { ["userMessage"] = user, ["assistantMessage"] = failed.Message });
            }
        }
        return Problems.Status(StatusCodes.Status500InternalServerError, "Internal Server Error", "The reply ended without a result.");
    }

    private static async Task<IResult> StreamAsync(HttpContext http, RunningReply reply)
    {
        var sse = new ServerSentEvents(http.Response);
        sse.Start();
        var ct = http.RequestAborted;
        try
        {
            await foreach (var e in reply.WatchAsync(ct))
            {
                switch (e)
                {
                    case ReplyEvent.Started s:
                        await sse.WriteAsync("message_start", new { conversationId = s.ConversationId, userMessage = s.UserMessage, assistantMessageId = s.AssistantMessageId, model = s.Model, provider = s.Provider }, ct);
                        break;
                    case ReplyEvent.Token t:
                        await sse.WriteAsync("token", new { content = t.Content }, ct);
                        break;
                    case ReplyEvent.Ended ended:
                        await sse.WriteAsync("message_end", new { message = ended.Message, usage = ended.Message.Usage, timings = ended.Message.Timings }, ct);
                        break;
                    case ReplyEvent.Failed failed:
                        await sse.WriteAsync("error", new { status = ReplyOutcomes.Status(failed.Failure), detail = failed.Detail, message = failed.Message }, ct);
                        break;
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The client left; the reply goes on and is stored when done.
        }
        return Results.Empty;
    }

    private static async Task<IResult> Watch(Guid id, HttpContext http, ConversationStore service, ReplyHub hub, CancellationToken ct)
    {
        if (await service.FindAsync(http.User.UserId(), id, ct) is null) return NotFound();
        var reply = hub.Get(id, http.User.UserId());
        return reply is null ? TypedResults.NoContent() : await StreamAsync(http, reply);
    }

    private static async Task<Results<Ok<MessageResponse>, ProblemHttpResult>> Stop(Guid id, HttpContext http, ConversationStore service, ReplyHub hub, CancellationToken ct)
    {
        if (await service.FindAsync(http.User.UserId(), id, ct) is null) return NotFound();
        var reply = hub.Get(id, http.User.UserId());
        if (reply is null) return Problems.Conflict("No reply is being generated in this conversation.");
        MessageResponse? stopped = null;
        var watch = reply.WatchAsync(ct);
        await reply.Stop.CancelAsync();
        await foreach (var e in watch)
        {
            if (e is ReplyEvent.Ended ended) stopped = ended.Message;
            if (e is ReplyEvent.Failed failed) stopped = failed.Message;
        }
        return stopped is null ? Problems.Status(StatusCodes.Status500InternalServerError, "Internal Server Error", "The stopped reply could not be stored.") : TypedResults.Ok(stopped);
    }

    private static async Task<Results<Ok<MessageResponse>, Ok<List<MessageResponse>>, ProblemHttpResult>> SwitchBranch(Guid id, BranchRequest request, HttpContext http, ConversationStore service, CancellationToken ct)
    {
        if (request.MessageId is not { } messageId) return Problems.Validation("messageId", "messageId is required.");
        var conversation = await service.FindAsync(http.User.UserId(), id, ct);
        if (conversation is null) return NotFound();
        return await service.SwitchBranchAsync(conversation, messageId, ct) is { } branch
            ? TypedResults.Ok(branch)
            : Problems.Validation("messageId", "messageId is not a message of this conversation.");
    }

    private static async Task<IResult> Export(Guid id, HttpContext http, ConversationStore service, string? format = "json", CancellationToken ct = default)
    {
        var conversation = await service.FindAsync(http.User.UserId(), id, ct);
        if (conversation is null) return NotFound();
        var json = http.RequestServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions;
        return await service.ExportAsync(conversation, format, json, ct) is { } file
            ? Results.File(file.Content, file.ContentType, file.FileName)
            : Problems.Validation("format", "format must be 'markdown' or 'json'.");
    }

    private static async Task<Results<Created<ConversationResponse>, ProblemHttpResult>> Import(ConversationExport export, HttpContext http, ConversationStore service, CancellationToken ct) =>
        await service.ImportAsync(http.User.UserId(), export, ct) switch
        {
            ImportResult.Imported imported => TypedResults.Created($"/api/v1/conversations/{imported.Conversation.Id}", ConversationResponse.From(imported.Conversation, false)),
            ImportResult.Invalid invalid => Problems.Validation(invalid.Errors),
            _ => throw new InvalidOperationException("Unknown import result."),
        };

    private static string ReasonPhrase(int status) => Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status);
}

using Microsoft.Extensions.AI;
using Sutazai.Data.Entities;
using Sutazai.Inference;
using Sutazai.Server.Inference;

namespace Sutazai.Server.Conversations;

/// <summary>
/// The generate → persist → publish steps of a reply, detached from the request that started it: tokens are published
/// on the <see cref="RunningReply"/> as they come, the final message is stored through <see cref="ConversationStore"/>,
/// then the reply ends on the hub (idle first, so whoever sees the end can start the next one at once). After the
/// first exchange of an untitled chat the model names it.
/// </summary>
public sealed class ReplyGenerator(IServiceScopeFactory scopes, IHostApplicationLifetime lifetime, ReplyHub hub, ILogger<ReplyGenerator> logger)
{
    /// <summary>Starts generating in the background; <paramref name="slot"/> (the user's generation slot) is released when it ends.</summary>
    public void Start(RunningReply reply, ResolvedModel model, List<ChatMessage> history, GenerateOptions? options, string? titleFrom, IDisposable slot) =>
        _ = Task.Run(() => GenerateAsync(reply, model, history, options, titleFrom, slot));

    private async Task GenerateAsync(RunningReply reply, ResolvedModel model, List<ChatMessage> history, GenerateOptions? options, string? titleFrom, IDisposable slot)
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
            // A stop can also end the stream normally (llama.cpp finishes a cancelled job with its tokens so far), so
            // the request, not how the stream ended, decides.
            status = linked.IsCancellationRequested ? MessageStatus.Stopped : MessageStatus.Complete;
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
            var finishReason = status == MessageStatus.Stopped ? "stopped" : status == MessageStatus.Error ? "error" : run?.FinishReasonName();
            var stored = await scope.ServiceProvider.GetRequiredService<ConversationStore>().FinishReplyAsync(reply.ConversationId, reply.AssistantMessageId,
                text.ToString(), status, error, model.ModelId, model.Provider.Name, finishReason, run?.UsageResponse(), run?.Timings());
            final = status == MessageStatus.Error ? new ReplyEvent.Failed(ReplyFailure.Generation, error!, stored) : new ReplyEvent.Ended(stored);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            logger.LogError(ex, "Storing reply {Message} failed", reply.AssistantMessageId); // final stays null: a storage failure below
        }
        finally
        {
            // Idle first, then tell the watchers: whoever sees the end can start the next reply at once.
            slot.Dispose();
            hub.Finish(reply);
            reply.Publish(final ?? new ReplyEvent.Failed(ReplyFailure.Storage, "The reply could not be stored.", null));
        }

        if (titleFrom is not null && status == MessageStatus.Complete) await GenerateTitleAsync(scope.ServiceProvider, reply.ConversationId, model, titleFrom);
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
            await services.GetRequiredService<ConversationStore>().SetGeneratedTitleAsync(conversationId, clean);
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
}

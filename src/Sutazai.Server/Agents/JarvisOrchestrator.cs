using Sutazai.Agents;
using Sutazai.Data.Entities;
using Sutazai.Server.Conversations;

namespace Sutazai.Server.Agents;

/// <summary>
/// What JARVIS does with one message, shared by /ws/jarvis and the web UI's JARVIS page: route it
/// (<see cref="JarvisRouter"/>), then start the chosen agent's run, or answer directly as an ordinary conversation
/// reply (stored, titled, searchable). Both callers then follow the run on <see cref="RunHub"/> or the reply on its
/// <see cref="RunningReply"/>.
/// </summary>
public sealed class JarvisOrchestrator(JarvisRouter router, AgentRunService runs, ConversationStore conversations, ReplyPipeline replies)
{
    public abstract record Outcome
    {
        public sealed record RunStarted(AgentRun Run) : Outcome;

        public sealed record Answering(RunningReply Reply) : Outcome;

        /// <summary>Code as in the /ws/jarvis error frame (invalid_request, forbidden, not_found, conflict, unavailable).</summary>
        public sealed record Failed(string Code, string Message) : Outcome;
    }

    public Task<JarvisRoute> RouteAsync(string text, CancellationToken ct) => router.RouteAsync(text, ct);

    /// <summary>Acts on a route: starts the agent (with <paramref name="model"/> when given) or starts a direct answer.</summary>
    public async Task<Outcome> ActAsync(Guid userId, JarvisRoute route, string text, Guid? conversationId, string? model, CancellationToken ct)
    {
        if (route.Agent is not null)
        {
            return await runs.StartAsync(userId, route.Agent, new StartRunRequest(route.Task, conversationId, null, model, null), ct) switch
            {
                AgentRunService.StartResult.Started run => new Outcome.RunStarted(run.Run),
                AgentRunService.StartResult.Invalid invalid => new Outcome.Failed("invalid_request",
                    string.Join(" ", invalid.Errors.Select(e => $"{e.Key}: {string.Join(" ", e.Value)}"))),
                AgentRunService.StartResult.Forbidden forbidden => new Outcome.Failed("forbidden", forbidden.Detail),
                _ => new Outcome.Failed("not_found", $"No agent '{route.Agent}'."),
            };
        }
        var conversation = conversationId is { } id
            ? await conversations.FindAsync(userId, id, ct)
            : await conversations.CreateAsync(userId, new CreateConversationRequest("JARVIS", null, null), ct);
        if (conversation is null) return new Outcome.Failed("not_found", "No conversation with that id.");
        var started = await replies.StartReplyAsync(userId, conversation, text, null, null, model, null, ct, edit: false, null);
        return started switch
        {
            StartReplyResult.Rejected rejected => new Outcome.Failed(ReplyOutcomes.Code(rejected.Reason), rejected.Detail),
            StartReplyResult.Started s => new Outcome.Answering(s.Reply),
            _ => throw new InvalidOperationException("Unknown reply result."),
        };
    }
}

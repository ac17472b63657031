using Sutazai.Agents;
using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Inference;
using Sutazai.Server.Chat;
using Sutazai.Server.Conversations;
using Sutazai.Server.Identity;

namespace Sutazai.Server.Agents;

/// <summary>Where JARVIS sends a request: an agent (with the task to give it), or a direct answer.</summary>
public sealed record JarvisRoute(string? Agent, string Task, string Reason, string Method);

/// <summary>
/// Routes a request. With a model that calls tools natively, the model decides through a <c>start_agent</c> tool;
/// otherwise (or when that fails) a deterministic keyword table decides (documented in docs/agents.md).
/// </summary>
public sealed partial class JarvisRouter(ModelCatalog models, IOptions<AgentOptions> options, ILogger<JarvisRouter> logger)
{
    public static readonly IReadOnlyList<(string Agent, Regex Pattern)> Keywords =
    [
        ("engineer", EngineerPattern()),
        ("shell", ShellPattern()),
        ("memory", MemoryPattern()),
        ("analyst", AnalystPattern()),
    ];

    public static JarvisRoute ByKeywords(string text)
    {
        foreach (var (agent, pattern) in Keywords)
            if (pattern.Match(text) is { Success: true } match)
                return new JarvisRoute(agent, text, $"the request mentions \"{match.Value}\"", "keywords");
        return new JarvisRoute(null, text, "no agent is needed", "keywords");
    }

    public async Task<JarvisRoute> RouteAsync(string text, CancellationToken ct)
    {
        ResolvedModel model;
        try
        {
            model = await models.ResolveAsync(null, ct);
        }
        catch (Exception ex) when (ex is NoModelAvailableException or InferenceUnavailableException)
        {
            return ByKeywords(text);
        }
        if (options.Value.JsonProviders.Contains(model.Provider.Name)) return ByKeywords(text);

        var agents = string.Join("\n", AgentCatalog.BuiltIns.Where(a => a.Kind != AgentKind.Crew && a.Id != "coder").Select(a => $"- {a.Id}: {a.Description}"));
        var startAgent = AIFunctionFactory.Create((string agent, string task) => "", "start_agent",
            "Hands the request to an agent. agent: one of the agent ids; task: what the agent must do, self-contained.");
        try
        {
            var response = await model.ChatClient().GetResponseAsync(
                [
                    new ChatMessage(ChatRole.System, "You are JARVIS, the user's assistant. If one of these agents should act on the request, call start_agent; " +
                        "if you can answer directly, reply with the word ANSWER only.\nAgents:\n" + agents),
                    new ChatMessage(ChatRole.User, text),
                ],
                new ChatOptions { Tools = [startAgent], MaxOutputTokens = 256 }, ct);
            var call = response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>().FirstOrDefault(c => c.Name == "start_agent");
            var agent = call?.Arguments?.TryGetValue("agent", out var a) == true ? a?.ToString() : null;
            if (agent is not null && AgentCatalog.BuiltIns.Any(b => b.Id == agent))
            {
                var task = call!.Arguments!.TryGetValue("task", out var t) && t?.ToString() is { Length: > 0 } given ? given : text;
                return new JarvisRoute(agent, task, "the model chose it", "model");
            }
            return new JarvisRoute(null, text, "the model answers directly", "model");
        }
        catch (Exception ex) when (ex is InferenceUnavailableException or HttpRequestException or NotSupportedException or InvalidOperationException)
        {
            logger.LogInformation("Routing by model failed ({Message}); using keywords", ex.Message);
            return ByKeywords(text);
        }
    }

    [GeneratedRegex(@"\b(create|build|generate|scaffold|write|make)\s+(me\s+)?(a|an|the)?\s*(new\s+)?(\w+\s+)?(project|app|application|program|website|web site|api|library|cli)\b", RegexOptions.IgnoreCase)]
    private static partial Regex EngineerPattern();

    [GeneratedRegex(@"\b(run|execute|shell|terminal|command|commands|largest files|biggest files|disk usage|list (the |my |all )?(files|folders|directories)|in my workspace)\b", RegexOptions.IgnoreCase)]
    private static partial Regex ShellPattern();

    [GeneratedRegex(@"\b(remember|recall|forget|what do you know about me|my preferences)\b", RegexOptions.IgnoreCase)]
    private static partial Regex MemoryPattern();

    [GeneratedRegex(@"\b(summari[sz]e|extract|compare|analy[sz]e)\b.*\b(document|documents|file|files|report|reports|pdf|paper|contract)\b|\b(in|from|across) my (documents|files|knowledge)\b", RegexOptions.IgnoreCase)]
    private static partial Regex AnalystPattern();
}

/// <summary>Open JARVIS sockets; every run event reaches every socket of the run's owner (approvals included).</summary>
public sealed class JarvisSocketRegistry
{
    private readonly ConcurrentDictionary<string, JarvisSocketSession> _sessions = new();

    public JarvisSocketRegistry(RunHub hub) => hub.Published += e =>
    {
        foreach (var session in _sessions.Values)
            if (session.UserId == e.UserId) session.Forward(e);
    };

    public void Add(JarvisSocketSession session) => _sessions[session.SessionId] = session;

    public void Remove(JarvisSocketSession session) => _sessions.TryRemove(session.SessionId, out _);
}

public static class JarvisSocketApi
{
    public static IEndpointRouteBuilder MapJarvisSocket(this IEndpointRouteBuilder routes)
    {
        routes.Map("/ws/jarvis", (HttpContext http, JarvisSocketRegistry registry, IServiceScopeFactory scopes, ILogger<JarvisSocketSession> logger) =>
            JsonSocketSession.ServeAsync(http, "/ws/jarvis", (socket, user) => new JarvisSocketSession(socket, scopes, logger, user), registry.Add, registry.Remove))
            .WithTags("Agents").ExcludeFromDescription();
        return routes;
    }
}

/// <summary>One /ws/jarvis connection (protocol in docs/api.md): the user says what they want; JARVIS answers or starts an agent.</summary>
public sealed class JarvisSocketSession(WebSocket socket, IServiceScopeFactory scopes, ILogger logger, SocketCredential? credential)
    : JsonSocketSession(socket, scopes, logger, credential)
{
    private readonly System.Threading.Channels.Channel<object> _events = System.Threading.Channels.Channel.CreateUnbounded<object>(new() { SingleReader = true });
    private int _pumping;

    protected override string KnownTypes => "ping, auth, message, approve, cancel, history";

    protected override async Task HandleAsync(string type, JsonElement frame, CancellationToken ct)
    {
        switch (type)
        {
            case "message":
                await MessageAsync(frame, ct);
                break;
            case "approve":
                await ApproveAsync(frame, ct);
                break;
            case "cancel":
                await CancelAsync(frame, ct);
                break;
            case "history":
                await HistoryAsync(frame, ct);
                break;
            default:
                await SendErrorAsync("unknown_type", $"Unknown frame type '{type}'. Known: {KnownTypes}.", ct);
                break;
        }
    }

    /// <summary>Queues a run event for this socket; one pump sends them in the order they were published.</summary>
    public void Forward(RunEvent e)
    {
        object frame = e.Type switch
        {
            "step" => new { type = "step", runId = e.RunId, step = e.Data },
            "error" => Merge("run_error", e),
            _ => Merge(e.Type, e),
        };
        _events.Writer.TryWrite(frame);
        if (Interlocked.Exchange(ref _pumping, 1) == 0) _ = Task.Run(PumpAsync, CancellationToken.None);
    }

    private async Task PumpAsync()
    {
        try
        {
            await foreach (var frame in _events.Reader.ReadAllAsync(Closing)) await SendAsync(frame, Closing);
        }
        catch (Exception ex) when (ex is OperationCanceledException or WebSocketException or ObjectDisposedException)
        {
            // The socket closed; the runs go on and are stored.
        }
    }

    private static Dictionary<string, object?> Merge(string type, RunEvent e)
    {
        var frame = new Dictionary<string, object?> { ["type"] = type, ["runId"] = e.RunId };
        foreach (var property in JsonSerializer.SerializeToElement(e.Data, Json).EnumerateObject()) frame[property.Name] = property.Value.Clone();
        return frame;
    }

    private static string? ReadString(JsonElement frame, string name) =>
        frame.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private async Task MessageAsync(JsonElement frame, CancellationToken ct)
    {
        var text = ReadString(frame, "text")?.Trim();
        if (string.IsNullOrEmpty(text))
        {
            await SendErrorAsync("invalid_request", "text: a message needs non-empty text.", ct);
            return;
        }
        await SendAsync(new { type = "thinking", text = "Deciding how to help…" }, ct);
        await using var scope = Scopes.CreateAsyncScope();
        var jarvis = scope.ServiceProvider.GetRequiredService<JarvisOrchestrator>();
        var route = await jarvis.RouteAsync(text, ct);
        await SendAsync(new { type = "route", agent = route.Agent, reason = route.Reason, method = route.Method }, ct);
        var model = ReadString(frame, "model");
        switch (await jarvis.ActAsync(User.UserId(), route, text, ReadGuid(frame, "conversationId"), string.IsNullOrWhiteSpace(model) ? null : model, ct))
        {
            case JarvisOrchestrator.Outcome.RunStarted started:
                await SendAsync(new { type = "run_started", runId = started.Run.Id, agent = route.Agent }, ct);
                break;
            case JarvisOrchestrator.Outcome.Answering answering:
                Follow(answering.Reply);
                break;
            case JarvisOrchestrator.Outcome.Failed failed:
                await SendErrorAsync(failed.Code, failed.Message, ct);
                break;
        }
    }

    /// <summary>Streams a direct answer (an ordinary conversation reply) as tokens, detached from the frame that asked.</summary>
    private void Follow(RunningReply reply) =>
        _ = Task.Run(async () =>
        {
            try
            {
                await foreach (var e in reply.WatchAsync(Closing))
                {
                    object? frame = e switch
                    {
                        ReplyEvent.Started s => new { type = "answer_started", conversationId = s.ConversationId, messageId = s.AssistantMessageId },
                        ReplyEvent.Token token => new { type = "token", conversationId = reply.ConversationId, content = token.Content },
                        ReplyEvent.Ended ended => new { type = "complete", conversationId = reply.ConversationId, messageId = ended.Message.Id, output = ended.Message.Content, status = ended.Message.Status },
                        ReplyEvent.Failed failed => new { type = "error", code = "generation_failed", message = failed.Detail, conversationId = reply.ConversationId },
                        _ => null,
                    };
                    if (frame is not null) await SendAsync(frame, Closing);
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or WebSocketException or ObjectDisposedException)
            {
                // The socket closed while following; the reply is stored anyway.
            }
        }, CancellationToken.None);

    private async Task ApproveAsync(JsonElement frame, CancellationToken ct)
    {
        if (ReadGuid(frame, "runId") is not { } runId || ReadGuid(frame, "approvalId") is not { } approvalId)
        {
            await SendErrorAsync("invalid_request", "approve needs runId and approvalId.", ct);
            return;
        }
        bool? approve = frame.TryGetProperty("approve", out var a) && a.ValueKind is JsonValueKind.True or JsonValueKind.False ? a.GetBoolean() : null;
        JsonElement? edited = frame.TryGetProperty("editedArguments", out var e) ? e : null;
        await using var scope = Scopes.CreateAsyncScope();
        var result = await scope.ServiceProvider.GetRequiredService<AgentRunService>().DecideAsync(User.UserId(), runId, approvalId, new ApprovalDecision(approve, edited), ct);
        switch (result)
        {
            case AgentRunService.DecideResult.Done:
                break; // approval_decided reaches every socket of the user through the hub
            case AgentRunService.DecideResult.Invalid invalid:
                await SendErrorAsync("invalid_request", $"{invalid.Field}: {invalid.Detail}", ct);
                break;
            case AgentRunService.DecideResult.Conflict conflict:
                await SendErrorAsync("conflict", conflict.Detail, ct);
                break;
            case AgentRunService.DecideResult.NotFound notFound:
                await SendErrorAsync("not_found", notFound.Detail, ct);
                break;
        }
    }

    private async Task CancelAsync(JsonElement frame, CancellationToken ct)
    {
        if (ReadGuid(frame, "runId") is not { } runId)
        {
            await SendErrorAsync("invalid_request", "cancel needs a runId.", ct);
            return;
        }
        await using var scope = Scopes.CreateAsyncScope();
        var result = await scope.ServiceProvider.GetRequiredService<AgentRunService>().CancelAsync(User.UserId(), runId, ct);
        if (result is null) await SendErrorAsync("not_found", "No run with that id.", ct);
        else if (!result.Value.Cancelled) await SendErrorAsync("conflict", $"The run has already finished ({result.Value.Status}).", ct);
    }

    private async Task HistoryAsync(JsonElement frame, CancellationToken ct)
    {
        await using var scope = Scopes.CreateAsyncScope();
        var services = scope.ServiceProvider;
        if (ReadGuid(frame, "runId") is { } runId)
        {
            var view = await services.GetRequiredService<AgentRunService>().ViewAsync(User.UserId(), runId, ct);
            if (view is null) await SendErrorAsync("not_found", "No run with that id.", ct);
            else await SendAsync(new { type = "history", run = view }, ct);
            return;
        }
        var runs = await services.GetRequiredService<AgentRunService>().ListAsync(User.UserId(), null, null, 50, ct);
        await SendAsync(new { type = "history", runs }, ct);
    }
}

using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Inference;
using Sutazai.Agents.Tools;


namespace Sutazai.Agents;

/// <summary>
/// Executes agent runs step by step. Every step is stored before it is published; a run resumes from its stored
/// steps (after an approval, a crash or on another worker), so nothing is asked of the model twice and no tool with
/// side effects is invoked twice: a side-effect call found started but without a result is reported to the model as
/// interrupted instead of being re-run.
/// </summary>
public sealed partial class AgentRunner(
    AppDbContext db,
    AgentCatalog catalog,
    ModelCatalog models,
    IEnumerable<IToolProvider> toolProviders,
    IRunControl hub,
    AgentWorkspaces workspaces,
    RunArchive archive,
    AgentAccess access,
    MemoryStore memory,
    IServiceProvider services,
    IOptions<AgentOptions> options,
    IOptions<AgentToolOptions> toolOptions,
    AgentWorkerIdentity worker,
    GenerationLimiter limiter,
    TimeProvider time,
    ILogger<AgentRunner> logger)
{
    private string NodeId => worker.Id;
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    public const string DelegateTool = "delegate_task";

    /// <summary>The segment the engineer's build attempts are stored in, apart from the model's own calls.</summary>
    public const string BuildSegment = "build";

    /// <summary>Most characters of a failed build's output sent back to the model (its end, where errors are).</summary>
    public const int BuildFeedbackChars = 4000;

    private AgentRun _run = null!;
    private AgentDefinition _agent = null!;
    private ResolvedModel _model = null!;
    private readonly List<StoredStep> _steps = [];
    private int _modelTurns;

    /// <summary>Runs (or resumes) one run until it finishes, waits for an approval, or is cancelled. Safe to call twice.</summary>
    public async Task ExecuteAsync(Guid runId, CancellationToken ct)
    {
        var now = time.GetUtcNow().UtcDateTime;
        var leaseUntil = now.AddSeconds(options.Value.LeaseSeconds);
        var claimed = await db.AgentRuns
            .Where(r => r.Id == runId && (r.Status == AgentRunStatus.Queued || (r.Status == AgentRunStatus.Running && (r.LeaseUntil == null || r.LeaseUntil < now))))
            .ExecuteUpdateAsync(s => s
                .SetProperty(r => r.Status, AgentRunStatus.Running)
                .SetProperty(r => r.LeaseOwner, NodeId)
                .SetProperty(r => r.LeaseUntil, leaseUntil)
                .SetProperty(r => r.StartedAt, r => r.StartedAt ?? now), ct);
        if (claimed == 0) return; // finished, waiting for a decision, cancelled, or another worker holds it
        _run = await db.AgentRuns.AsNoTracking().FirstAsync(r => r.Id == runId, ct);

        var cancel = hub.Executing(runId);
        using var timeout = new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, cancel.Token, timeout.Token);
        using var heartbeat = new CancellationTokenSource();
        var heartbeatTask = HeartbeatAsync(runId, cancel, heartbeat.Token);
        try
        {
            PublishStatus(AgentRunStatus.Running);
            _agent = await catalog.FindAsync(_run.UserId, _run.AgentId, linked.Token)
                ?? throw new RunFailedException($"The agent '{_run.AgentId}' no longer exists.");
            timeout.CancelAfter(_agent.Limits.Timeout);
            _model = await models.ResolveAsync(_run.Model ?? _agent.Model, linked.Token);
            await LoadStepsAsync(linked.Token);
            var outcome = await RunAgentAsync(linked.Token);
            if (outcome is Outcome.Finished finished) await FinishAsync(AgentRunStatus.Succeeded, finished.Text, null);
            else await WaitForApprovalAsync();
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            await FinishAsync(AgentRunStatus.Cancelled, null, "Cancelled by the user.");
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            await FailAsync($"The run exceeded its time limit of {_agent.Limits.Timeout.TotalSeconds:0} s; running tools were stopped.");
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The worker is stopping: leave the run 'running' with its lease, so it is resumed after the lease expires.
            throw;
        }
        catch (Exception ex) when (ex is RunFailedException or InferenceUnavailableException or ModelNotFoundException or NoModelAvailableException or InvalidInferenceInputException)
        {
            await FailAsync(ex.Message);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogError(ex, "Agent run {RunId} failed", runId);
            await FailAsync($"The run failed: {ex.Message}");
        }
        finally
        {
            await heartbeat.CancelAsync();
            await heartbeatTask;
            hub.Done(runId, cancel);
            cancel.Dispose();
        }
    }

    /// <summary>Renews the lease while the run works, and notices a cancel made on another node.</summary>
    private async Task HeartbeatAsync(Guid runId, CancellationTokenSource cancel, CancellationToken ct)
    {
        var period = TimeSpan.FromSeconds(Math.Max(1, options.Value.LeaseSeconds / 3.0));
        try
        {
            while (!ct.IsCancellationRequested)
            {
                await Task.Delay(period, time, ct);
                await using var scope = services.CreateAsyncScope();
                var heartbeatDb = scope.ServiceProvider.GetRequiredService<AppDbContext>();
                var until = time.GetUtcNow().UtcDateTime.AddSeconds(options.Value.LeaseSeconds);
                var renewed = await heartbeatDb.AgentRuns.Where(r => r.Id == runId && r.LeaseOwner == NodeId && r.Status == AgentRunStatus.Running)
                    .ExecuteUpdateAsync(s => s.SetProperty(r => r.LeaseUntil, until), ct);
                if (renewed == 0 && await heartbeatDb.AgentRuns.AnyAsync(r => r.Id == runId && r.Status == AgentRunStatus.Cancelled, ct))
                    await cancel.CancelAsync();
            }
        }
        catch (OperationCanceledException)
        {
            // The run ended.
        }
    }

    // ---- the agent kinds -------------------------------------------------------------------------------------------

    private async Task<Outcome> RunAgentAsync(CancellationToken ct)
    {
        var role = await db.Users.AsNoTracking().Where(u => u.Id == _run.UserId).Select(u => u.Role).FirstOrDefaultAsync(ct)
            ?? throw new RunFailedException("The run's user no longer exists.");
        // Checked at start too; again here because the setting may have been tightened while the run was queued or waiting.
        if (access.ForbiddenFamily(role, AgentAccess.FamiliesOf(_agent, _run.Options)) is { } family)
            throw new RunFailedException($"Your role ({role}) may not use the tool family '{family}' ({AgentAccess.FamiliesSetting(role)}).");
        var workspace = PrivateFiles.CreateDirectory(workspaces.For(_run));
        var context = new ToolContext(_run.Id, _run.UserId, workspace, services, IsAdmin: role == Roles.Admin, AgentId: _run.AgentId);
        if (_agent.Kind == AgentKind.Crew) return await RunCrewAsync(context, ct);

        var system = _agent.Instructions.Trim();
        if (_agent.Kind == AgentKind.Memory)
            system += "\n\n" + await memory.CoreMemoryPromptAsync(_run.UserId, ct);
        system += $"\n\nToday is {time.GetUtcNow():yyyy-MM-dd}. Files you write go to the run's workspace.";
        var segment = new Segment(null, null, system, UserInput(), ToolsFor(_agent.Tools, context), null);
        return _agent.Kind == AgentKind.Engineer ? await BuildLoopAsync(segment, context, ct) : await LoopAsync(segment, ct);
    }

    /// <summary>
    /// The engineer: the tool loop, then the build command its plan names (<see cref="BuildCommand"/>), run through
    /// <c>shell_run</c> exactly like a call of the model's — approval, the shell tool's sandbox, stored steps, no
    /// re-run after a crash — but in its own <see cref="BuildSegment"/>, so the model's conversation holds no call it
    /// did not make. A failed build goes back to the model as a user message (a <c>build_attempt</c> step with
    /// <c>feedback</c>) and the loop goes on, up to <see cref="AgentOptions.EngineerMaxBuildAttempts"/> attempts.
    /// </summary>
    private async Task<Outcome> BuildLoopAsync(Segment segment, ToolContext context, CancellationToken ct)
    {
        var max = options.Value.EngineerMaxBuildAttempts;
        while (true)
        {
            var outcome = await LoopAsync(segment, ct);
            if (outcome is not Outcome.Finished finished) return outcome;
            var mine = _steps.Where(s => s.Segment == segment.Key).ToList();
            if (BuildCommand(mine) is not { } command) return finished;
            var attempts = mine.Where(s => s.Kind == "build_attempt").ToList();
            if (attempts.LastOrDefault() is { } last && last.Index > mine.Last(s => s.Kind == "model").Index)
            {
                // Stored after the model's last answer and not sent back to it: passed, denied, or the last attempt allowed.
                if (last.Data.GetProperty("passed").GetBoolean() || last.Data.GetProperty("denied").GetBoolean()) return finished;
                throw new RunFailedException(BuildFailedMessage(last.Data));
            }

            var number = attempts.Count + 1;
            var call = new ToolCall($"build_{number}", "shell_run",
                JsonSerializer.SerializeToElement(new { command, timeoutSeconds = toolOptions.Value.ShellMaxTimeoutSeconds }, Json));
            var build = new Segment(BuildSegment, null, "", "", ToolsFor(["shell"], context), null);
            if (!_steps.Any(s => s.Segment == BuildSegment && s.Kind == "tool_result" && s.CallId == call.CallId)
                && await CallAsync(build, call, _steps.Where(s => s.Segment == BuildSegment).ToList(), ct, null) is Outcome.Waiting waiting)
                return waiting;

            var result = _steps.Last(s => s.Segment == BuildSegment && s.Kind == "tool_result" && s.CallId == call.CallId).Data;
            var attempt = BuildAttempt.From(result, number, max, command, call.CallId);
            await AddStepAsync(segment, "build_attempt", attempt);
            if (attempt.Passed || attempt.Denied) return finished;
            if (attempt.Feedback is null) throw new RunFailedException(BuildFailedMessage(_steps[^1].Data));
        }
    }

    private static string BuildFailedMessage(JsonElement attempt) =>
        $"The build command `{attempt.GetProperty("command").GetString()}` still failed after {attempt.GetProperty("attempt").GetInt32()} attempt" +
        (attempt.GetProperty("attempt").GetInt32() == 1 ? "" : "s") +
        (attempt.GetProperty("exitCode") is { ValueKind: JsonValueKind.Number } code ? $" (exit code {code.GetInt32()})" : "") +
        "; the files are in the workspace.";

    /// <summary>The command of the last <c>Build: &lt;command&gt;</c> line in the model's texts (so a later plan can change it), or null.</summary>
    internal static string? BuildCommand(IEnumerable<StoredStep> steps) =>
        steps.Where(s => s.Kind == "model")
            .SelectMany(s => BuildLine().Matches(s.Data.GetProperty("text").GetString() ?? "").Select(m => m.Groups["command"].Value.Trim()))
            .LastOrDefault(c => c.Length > 0);

    [GeneratedRegex(@"^[ \t>*-]*(?:\*\*)?Build:(?:\*\*)?[ \t]*`?(?<command>[^`\r\n]+?)`?[ \t]*$", RegexOptions.Multiline)]
    private static partial Regex BuildLine();

    private string UserInput()
    {
        var input = _run.Input;
        if (_run.CollectionIds is { Length: > 0 }) input += "\n\n(Search only these knowledge collections: " + _run.CollectionIds + ")";
        return input;
    }

    private IReadOnlyList<AgentTool> ToolsFor(IEnumerable<string> families, ToolContext context)
    {
        var wanted = families.ToHashSet(StringComparer.OrdinalIgnoreCase);
        return toolProviders.Where(p => wanted.Contains(p.Name)).SelectMany(p => p.Create(context)).ToList();
    }

    private async Task<Outcome> RunCrewAsync(ToolContext context, CancellationToken ct)
    {
        var crew = CrewSpec.Parse(_run.Options) ?? throw new RunFailedException("A crew run needs options.crew with members and tasks.");
        var members = crew.Members.ToDictionary(m => m.Role, StringComparer.OrdinalIgnoreCase);
        Segment MemberSegment(string key, CrewMember member, string task) => new(key, member.Role,
            $"You are {member.Role}. Your goal: {member.Goal}\nWork on the task you are given and finish with your result.",
            task, ToolsFor(member.Tools, context), null);

        if (crew.Process == "hierarchical")
        {
            var roster = string.Join("\n", crew.Members.Select(m => $"- {m.Role}: {m.Goal}"));
            var tasks = string.Join("\n", crew.Tasks.Select((t, i) => $"{i + 1}. {t.Description}"));
            var manager = new Segment(null, "manager",
                $"You manage a crew. Delegate each piece of work to the best member with `{DelegateTool}` (member = their role), " +
                $"read their results, and finish with the combined answer.\nMembers:\n{roster}",
                $"{_run.Input}\n\nTasks:\n{tasks}", [], members.Values.ToList());
            return await LoopAsync(manager, ct, key => MemberSegmentFor(key));

            Segment MemberSegmentFor((string CallId, string Role, string Task) call) =>
                MemberSegment("delegate:" + call.CallId, members[call.Role], call.Task);
        }

        var previous = new List<string>();
        string last = "";
        for (var i = 0; i < crew.Tasks.Count; i++)
        {
            var task = crew.Tasks[i];
            var member = task.Member is { } role && members.TryGetValue(role, out var m) ? m : crew.Members[i % crew.Members.Count];
            var prompt = $"{_run.Input}\n\nYour task: {task.Description}";
            if (previous.Count > 0) prompt += "\n\nResults of the previous tasks:\n" + string.Join("\n\n", previous);
            var outcome = await LoopAsync(MemberSegment($"task:{i}", member, prompt), ct);
            if (outcome is not Outcome.Finished done) return outcome;
            previous.Add($"[{member.Role}] {done.Text}");
            last = done.Text;
        }
        return new Outcome.Finished(last);
    }

    // ---- the loop ------------------------------------------------------------------------------------------------

    /// <summary>Model turn, tool calls, model turn… until the model answers without calling a tool.</summary>
    private async Task<Outcome> LoopAsync(Segment segment, CancellationToken ct, Func<(string CallId, string Role, string Task), Segment>? delegateTo = null)
    {
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var mine = _steps.Where(s => s.Segment == segment.Key).ToList();
            var lastModel = mine.LastOrDefault(s => s.Kind == "model");
            if (lastModel is not null)
            {
                var calls = lastModel.Calls();
                // Feedback stored after the answer (a failed build) is the model's to answer: it gets another turn.
                if (calls.Count == 0 && !mine.Any(s => s.Index > lastModel.Index && s.Feedback is not null))
                    return new Outcome.Finished(lastModel.Data.GetProperty("text").GetString() ?? "");
                var answered = mine.Where(s => s.Kind == "tool_result").Select(s => s.CallId).ToHashSet();
                var pending = calls.Where(c => !answered.Contains(c.CallId)).ToList();
                if (pending.Count > 0)
                {
                    foreach (var call in pending)
                    {
                        if (await CallAsync(segment, call, mine, ct, delegateTo) is Outcome.Waiting waiting) return waiting;
                    }
                    continue;
                }
            }
            await ModelTurnAsync(segment, mine, ct);
        }
    }

    private async Task ModelTurnAsync(Segment segment, List<StoredStep> mine, CancellationToken ct)
    {
        if (_modelTurns >= _agent.Limits.MaxSteps)
            throw new RunFailedException($"The run reached its limit of {_agent.Limits.MaxSteps} model steps without a final answer.");
        var used = _run.InputTokens + _run.OutputTokens;
        if (used >= _agent.Limits.MaxTokens)
            throw new RunFailedException($"The run used {used} tokens, its limit is {_agent.Limits.MaxTokens}.");

        var messages = new List<ChatMessage> { new(ChatRole.System, segment.SystemPrompt), new(ChatRole.User, segment.Input) };
        foreach (var step in mine)
        {
            if (step.Kind == "model")
            {
                var contents = new List<AIContent>();
                var text = step.Data.GetProperty("text").GetString();
                if (!string.IsNullOrEmpty(text)) contents.Add(new TextContent(text));
                contents.AddRange(step.Calls().Select(c => new FunctionCallContent(c.CallId, c.Name, ToDictionary(c.Arguments))));
                messages.Add(new ChatMessage(ChatRole.Assistant, contents));
            }
            else if (step.Kind == "tool_result")
            {
                messages.Add(new ChatMessage(ChatRole.Tool, [new FunctionResultContent(step.CallId!, step.Data.GetProperty("result").GetRawText())]));
            }
            else if (step.Feedback is { } feedback)
            {
                messages.Add(new ChatMessage(ChatRole.User, feedback));
            }
        }

        var tools = segment.Tools.Select(t => (AITool)t.Function).ToList();
        if (segment.Delegates is { Count: > 0 })
            tools.Add(AIFunctionFactory.Create((string member, string task) => "", DelegateTool,
                "Gives a task to a crew member and returns their result. member: the member's role; task: what they must do."));
        var chatOptions = new ChatOptions
        {
            Tools = tools.Count > 0 ? tools : null,
            MaxOutputTokens = (int)Math.Clamp(_agent.Limits.MaxTokens - used, 16, 4096),
        };
        var client = _model.ChatClient();
        if (options.Value.JsonProviders.Contains(_model.Provider.Name)) client = new JsonToolCallingChatClient(client);

        var updates = new List<ChatResponseUpdate>();
        // The step counts toward its owner's concurrent generations, waiting for a slot rather than failing the run.
        using (await limiter.AcquireAsync(_run.UserId, ct))
        {
            await foreach (var update in client.GetStreamingResponseAsync(messages, chatOptions, ct))
            {
                updates.Add(update);
                if (update.Text is { Length: > 0 } delta)
                    Publish("token", new { content = delta, member = segment.Member });
            }
        }
        var response = updates.ToChatResponse();
        var callsOut = response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>()
            .Select(c => new { callId = string.IsNullOrEmpty(c.CallId) ? "call_" + Guid.NewGuid().ToString("N")[..12] : c.CallId, name = c.Name, arguments = c.Arguments ?? new Dictionary<string, object?>() })
            .ToList();
        var inputTokens = response.Usage?.InputTokenCount ?? 0;
        var outputTokens = response.Usage?.OutputTokenCount ?? 0;
        _run.InputTokens += inputTokens;
        _run.OutputTokens += outputTokens;
        _modelTurns++;
        await db.AgentRuns.Where(r => r.Id == _run.Id).ExecuteUpdateAsync(s => s
            .SetProperty(r => r.InputTokens, r => r.InputTokens + inputTokens)
            .SetProperty(r => r.OutputTokens, r => r.OutputTokens + outputTokens), CancellationToken.None);
        await AddStepAsync(segment, "model", new
        {
            text = response.Text,
            calls = callsOut,
            model = _model.ModelId,
            worker = NodeId,
            usage = new { inputTokens, outputTokens },
        });
    }

    private async Task<Outcome?> CallAsync(Segment segment, ToolCall call, List<StoredStep> mine, CancellationToken ct,
        Func<(string CallId, string Role, string Task), Segment>? delegateTo)
    {
        if (call.Name == DelegateTool && delegateTo is not null && segment.Delegates is { } crew)
        {
            var role = call.Arguments.TryGetProperty("member", out var m) ? m.GetString() ?? "" : "";
            var task = call.Arguments.TryGetProperty("task", out var t) ? t.GetString() ?? "" : "";
            if (crew.All(c => !string.Equals(c.Role, role, StringComparison.OrdinalIgnoreCase)))
            {
                await AddResultAsync(segment, call, error: $"No crew member '{role}'. Members: {string.Join(", ", crew.Select(c => c.Role))}.");
                return null;
            }
            var canonical = crew.First(c => string.Equals(c.Role, role, StringComparison.OrdinalIgnoreCase)).Role;
            if (!mine.Any(s => s.Kind == "delegation" && s.CallId == call.CallId))
                await AddStepAsync(segment, "delegation", new { callId = call.CallId, member = canonical, task });
            var outcome = await LoopAsync(delegateTo((call.CallId, canonical, task)), ct);
            if (outcome is not Outcome.Finished done) return outcome;
            await AddResultAsync(segment, call, result: new { member = canonical, output = done.Text });
            return null;
        }

        var tool = segment.Tools.FirstOrDefault(t => t.Name == call.Name);
        if (tool is null)
        {
            await AddResultAsync(segment, call, error: $"There is no tool '{call.Name}'. Available: {string.Join(", ", segment.Tools.Select(t => t.Name))}.");
            return null;
        }
        var arguments = call.Arguments;
        if (tool.SideEffects && !await PreApprovedAsync(tool.Name, ct))
        {
            var approval = await db.AgentApprovals.AsNoTracking().Where(a => a.RunId == _run.Id && a.CallId == call.CallId)
                .OrderByDescending(a => a.Round).FirstOrDefaultAsync(ct);
            if (approval is null) return await RequestApprovalAsync(segment, call, tool, arguments, AssessRisk(tool, arguments), null);
            // Marked escalated, then the worker stopped before the next round was stored: ask it now.
            if (approval.Status == ApprovalStatus.Escalated)
                return await RequestApprovalAsync(segment, call, tool, JsonDocument.Parse(approval.EditedArguments!).RootElement.Clone(), approval.EditedRisk ?? "high", approval);
            if (approval.Status == ApprovalStatus.Pending)
            {
                if (!mine.Any(s => s.Kind == "approval_request" && s.Data.GetProperty("approvalId").GetGuid() == approval.Id))
                    await AddApprovalRequestAsync(segment, call, approval, null);
                return new Outcome.Waiting(approval);
            }
            if (approval.Status == ApprovalStatus.Denied)
            {
                if (!mine.Any(s => s.Kind == "denial" && s.CallId == call.CallId))
                    await AddStepAsync(segment, "denial", new { approvalId = approval.Id, callId = call.CallId, tool = tool.Name });
                await AddResultAsync(segment, call, error: "The user denied this call. Do not retry it; continue without it or explain what you need.", denied: true);
                return null;
            }
            // What the user approved: the round's arguments (after an escalation, the earlier round's edit) or their edit of them.
            arguments = JsonDocument.Parse(approval.EditedArguments ?? approval.Arguments).RootElement.Clone();
            var risk = approval.Risk;
            if (approval.EditedArguments is not null)
            {
                risk = approval.EditedRisk ?? AssessRisk(tool, arguments);
                if (RiskRank(risk) > RiskRank(approval.Risk))
                {
                    // The user approved a call shown as less risky than their edit made it: record that, and ask again with the new risk.
                    await db.AgentApprovals.Where(a => a.Id == approval.Id && a.Status == ApprovalStatus.Approved)
                        .ExecuteUpdateAsync(s => s.SetProperty(a => a.Status, ApprovalStatus.Escalated).SetProperty(a => a.EditedRisk, risk), CancellationToken.None);
                    approval.EditedRisk = risk;
                    return await RequestApprovalAsync(segment, call, tool, arguments, risk, approval);
                }
                if (approval.EditedRisk is null)
                    await db.AgentApprovals.Where(a => a.Id == approval.Id).ExecuteUpdateAsync(s => s.SetProperty(a => a.EditedRisk, risk), CancellationToken.None);
            }
            if (!mine.Any(s => s.Kind == "approval" && s.CallId == call.CallId))
                await AddStepAsync(segment, "approval", new
                {
                    approvalId = approval.Id, callId = call.CallId, tool = tool.Name, arguments, edited = approval.EditedArguments is not null, risk, round = approval.Round,
                });
        }

        if (mine.Any(s => s.Kind == "tool_call" && s.CallId == call.CallId))
        {
            // Started before a crash or restart and never finished: re-running could repeat its side effect.
            if (tool.SideEffects)
            {
                await AddResultAsync(segment, call, error: "The tool was running when the run was interrupted (server restart); it was not run again. Check its effect before retrying.");
                return null;
            }
        }
        else
        {
            await AddStepAsync(segment, "tool_call", new { callId = call.CallId, tool = tool.Name, arguments });
        }

        var watch = Stopwatch.StartNew();
        try
        {
            var args = new AIFunctionArguments(ToDictionary(arguments)) { Services = services };
            var result = await tool.Function.InvokeAsync(args, ct);
            await AddResultAsync(segment, call, result: result, durationMs: watch.ElapsedMilliseconds);
        }
        catch (Exception ex) when (ex is ToolException or ArgumentException or JsonException or InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            await AddResultAsync(segment, call, error: ex.Message, durationMs: watch.ElapsedMilliseconds);
        }
        return null;
    }

    /// <summary>Stores a pending approval of <paramref name="arguments"/> (the next round after <paramref name="previous"/>, when given) and its step.</summary>
    private async Task<Outcome> RequestApprovalAsync(Segment segment, ToolCall call, AgentTool tool, JsonElement arguments, string risk, AgentApproval? previous)
    {
        var approval = new AgentApproval
        {
            Id = Guid.NewGuid(),
            RunId = _run.Id,
            UserId = _run.UserId,
            CallId = call.CallId,
            Tool = tool.Name,
            Arguments = arguments.GetRawText(),
            Risk = risk,
            Round = previous is null ? 0 : previous.Round + 1,
            CreatedAt = time.GetUtcNow().UtcDateTime,
        };
        db.AgentApprovals.Add(approval);
        await db.SaveChangesAsync(CancellationToken.None);
        await AddApprovalRequestAsync(segment, call, approval, previous);
        return new Outcome.Waiting(approval);
    }

    private Task AddApprovalRequestAsync(Segment segment, ToolCall call, AgentApproval approval, AgentApproval? previous)
    {
        var data = new JsonObject
        {
            ["approvalId"] = approval.Id,
            ["callId"] = call.CallId,
            ["tool"] = approval.Tool,
            ["arguments"] = JsonNode.Parse(approval.Arguments),
            ["risk"] = approval.Risk,
        };
        if (previous is not null)
        {
            data["round"] = approval.Round;
            data["previousApprovalId"] = previous.Id;
            data["previousRisk"] = previous.Risk;
            data["reason"] = $"The edited arguments are {approval.Risk} risk, the approved call was {previous.Risk}: approve the edited call again.";
        }
        return AddStepAsync(segment, "approval_request", data);
    }

    /// <summary>A stored risk ("low", "medium", "high") in <see cref="ToolRisk"/>'s order; anything unreadable ranks high.</summary>
    private static ToolRisk RiskRank(string risk) => Enum.TryParse<ToolRisk>(risk, ignoreCase: true, out var rank) ? rank : ToolRisk.High;

    private static string AssessRisk(AgentTool tool, JsonElement arguments)
    {
        try
        {
            return tool.AssessRisk(new AIFunctionArguments(ToDictionary(arguments))).ToString().ToLowerInvariant();
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or JsonException or FormatException)
        {
            return "high"; // arguments the classifier cannot read are not low risk
        }
    }

    private async Task<bool> PreApprovedAsync(string tool, CancellationToken ct) =>
        await db.ToolPolicies.AsNoTracking().AnyAsync(p => p.Tool == tool && p.PreApproved, ct);

    private Task AddResultAsync(Segment segment, ToolCall call, object? result = null, string? error = null, long? durationMs = null, bool denied = false) =>
        AddStepAsync(segment, "tool_result", new
        {
            callId = call.CallId,
            tool = call.Name,
            result = error is null ? JsonSerializer.SerializeToElement(result, Json) : JsonSerializer.SerializeToElement(new { error }, Json),
            error,
            denied,
            durationMs,
        });

    // ---- persistence -------------------------------------------------------------------------------------------

    private async Task LoadStepsAsync(CancellationToken ct)
    {
        var rows = await db.AgentRunSteps.AsNoTracking().Where(s => s.RunId == _run.Id).OrderBy(s => s.Index).ToListAsync(ct);
        _steps.AddRange(rows.Select(StoredStep.From));
        _modelTurns = _steps.Count(s => s.Kind == "model");
    }

    /// <summary>Stores the step (the unique (run, index) key makes a second writer fail loudly), then publishes it.</summary>
    private async Task AddStepAsync(Segment segment, string kind, object data)
    {
        var node = JsonSerializer.SerializeToNode(data, Json)!.AsObject();
        if (segment.Key is not null) node["segment"] = segment.Key;
        var entity = new AgentRunStep
        {
            Id = Guid.NewGuid(),
            RunId = _run.Id,
            Index = _steps.Count,
            Kind = kind,
            Member = segment.Member,
            Data = node.ToJsonString(Json),
            CreatedAt = time.GetUtcNow().UtcDateTime,
        };
        db.AgentRunSteps.Add(entity);
        await db.SaveChangesAsync(CancellationToken.None);
        db.Entry(entity).State = EntityState.Detached;
        await db.AgentRuns.Where(r => r.Id == _run.Id).ExecuteUpdateAsync(s => s.SetProperty(r => r.StepCount, entity.Index + 1), CancellationToken.None);
        var stored = StoredStep.From(entity);
        _steps.Add(stored);
        Publish("step", StepView.From(entity));
        if (kind == "approval_request")
            Publish("approval_required", new { approvalId = stored.Data.GetProperty("approvalId").GetGuid(), tool = stored.Data.GetProperty("tool").GetString(), arguments = stored.Data.GetProperty("arguments"), risk = stored.Data.GetProperty("risk").GetString(), member = segment.Member });
    }

    private async Task WaitForApprovalAsync()
    {
        await db.AgentRuns.Where(r => r.Id == _run.Id && r.Status == AgentRunStatus.Running)
            .ExecuteUpdateAsync(s => s.SetProperty(r => r.Status, AgentRunStatus.WaitingApproval).SetProperty(r => r.LeaseOwner, (string?)null).SetProperty(r => r.LeaseUntil, (DateTime?)null));
        PublishStatus(AgentRunStatus.WaitingApproval);
    }

    private async Task FailAsync(string error)
    {
        await AddStepAsync(new Segment(null, null, "", "", [], null), "error", new { message = error });
        await FinishAsync(AgentRunStatus.Failed, null, error);
    }

    private async Task FinishAsync(string status, string? output, string? error)
    {
        try
        {
            // Several nodes: the workspace this node wrote goes where every node can list and serve it — before the
            // run reads as finished, so whoever sees it finished finds its files.
            await archive.SaveAsync(_run, CancellationToken.None);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or DbUpdateException or InvalidOperationException)
        {
            logger.LogWarning(ex, "Could not store the workspace of run {RunId} for the other nodes: {Message}", _run.Id, ex.Message);
        }
        var now = time.GetUtcNow().UtcDateTime;
        var updated = await db.AgentRuns.Where(r => r.Id == _run.Id && (r.Status == AgentRunStatus.Running || status == AgentRunStatus.Cancelled))
            .Where(r => r.Status != AgentRunStatus.Succeeded && r.Status != AgentRunStatus.Failed)
            .ExecuteUpdateAsync(s => s
                .SetProperty(r => r.Status, status)
                .SetProperty(r => r.Output, output)
                .SetProperty(r => r.Error, error)
                .SetProperty(r => r.FinishedAt, now)
                .SetProperty(r => r.LeaseOwner, (string?)null)
                .SetProperty(r => r.LeaseUntil, (DateTime?)null));
        if (updated == 0) return;
        PublishStatus(status);
        Publish(status == AgentRunStatus.Succeeded ? "complete" : "error", new { status, output, error });
    }

    private void PublishStatus(string status) => Publish("status", new { status });

    private void Publish(string type, object data) => hub.Publish(new RunEvent(type, _run.Id, _run.UserId, data));

    internal static Dictionary<string, object?> ToDictionary(JsonElement arguments) =>
        arguments.ValueKind == JsonValueKind.Object
            ? arguments.EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone())
            : [];

    internal static Dictionary<string, object?> ToDictionary(IDictionary<string, object?>? arguments) =>
        arguments is null ? [] : new Dictionary<string, object?>(arguments);

    // ---- small types -------------------------------------------------------------------------------------------

    private sealed record Segment(string? Key, string? Member, string SystemPrompt, string Input, IReadOnlyList<AgentTool> Tools, IReadOnlyList<CrewMember>? Delegates);

    private abstract record Outcome
    {
        public sealed record Finished(string Text) : Outcome;

        public sealed record Waiting(AgentApproval Approval) : Outcome;
    }

    internal sealed record ToolCall(string CallId, string Name, JsonElement Arguments);

    internal sealed record StoredStep(int Index, string Kind, string? Segment, string? CallId, JsonElement Data)
    {
        /// <summary>Text for the model to answer (a failed build's output), sent as a user message.</summary>
        public string? Feedback => Data.TryGetProperty("feedback", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString() : null;

        public static StoredStep From(AgentRunStep s)
        {
            var data = JsonDocument.Parse(s.Data).RootElement.Clone();
            return new StoredStep(s.Index, s.Kind,
                data.TryGetProperty("segment", out var seg) ? seg.GetString() : null,
                data.TryGetProperty("callId", out var c) ? c.GetString() : null,
                data);
        }

        public List<ToolCall> Calls() => Data.TryGetProperty("calls", out var calls)
            ? calls.EnumerateArray().Select(c => new ToolCall(c.GetProperty("callId").GetString()!, c.GetProperty("name").GetString()!, c.GetProperty("arguments"))).ToList()
            : [];
    }
}

/// <summary>One run of the engineer's build command, as its <c>build_attempt</c> step stores it.</summary>
internal sealed record BuildAttempt(
    int Attempt, int MaxAttempts, string Command, string CallId, int? ExitCode, bool TimedOut, bool Passed, bool Denied, string Output, string? Feedback)
{
    /// <summary>Reads the <c>shell_run</c> result step; a failure before the last attempt gets feedback for the model.</summary>
    public static BuildAttempt From(JsonElement toolResult, int attempt, int maxAttempts, string command, string callId)
    {
        var error = toolResult.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.String ? e.GetString() : null;
        var denied = toolResult.TryGetProperty("denied", out var d) && d.ValueKind == JsonValueKind.True;
        var result = toolResult.TryGetProperty("result", out var r) && r.ValueKind == JsonValueKind.Object ? r : JsonDocument.Parse("{}").RootElement;
        string Text(string name) => error is null && result.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? (v.GetString() ?? "").TrimEnd() : "";
        int? exitCode = error is null && result.TryGetProperty("exitCode", out var c) && c.ValueKind == JsonValueKind.Number ? c.GetInt32() : null;
        var timedOut = error is null && result.TryGetProperty("timedOut", out var t) && t.ValueKind == JsonValueKind.True;
        var passed = error is null && exitCode == 0 && !timedOut;
        var output = error ?? string.Join("\n", new[] { Text("stdout"), Text("stderr") }.Where(x => x.Length > 0));
        if (output.Length > AgentRunner.BuildFeedbackChars) output = "…" + output[^AgentRunner.BuildFeedbackChars..];
        string? feedback = null;
        if (!passed && !denied && attempt < maxAttempts)
        {
            var how = error is not null ? "could not run" : timedOut ? "timed out" : $"failed with exit code {exitCode}";
            feedback = $"The build command `{command}` {how} (attempt {attempt} of {maxAttempts}). Its output:\n{output}\n\n" +
                "Fix the files, then finish again: the command runs again after your answer.";
        }
        return new BuildAttempt(attempt, maxAttempts, command, callId, exitCode, timedOut, passed, denied, output, feedback);
    }
}

/// <summary>This host's name as a run executor: it holds run leases and is recorded on each model step.</summary>
public sealed class AgentWorkerIdentity
{
    public string Id { get; } = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..8]}";
}

/// <summary>A run cannot go on; the message is stored as the run's error and shown to the user.</summary>
public sealed class RunFailedException(string message) : Exception(message);

/// <summary>Where a run's files live: its own folder, or the allowed repository a coder run works in.</summary>
public sealed class AgentWorkspaces(AgentDataDir data)
{
    public string Root => Path.Combine(data.Path, "agents", "runs");

    public string For(AgentRun run) => CrewSpec.Repository(run.Options) ?? RunFolder(run.Id);

    /// <summary>The folder a run gets under <see cref="Root"/> when it works on no admin-allowed repository.</summary>
    public string RunFolder(Guid runId) => Path.Combine(Root, runId.ToString("N"));
}

public sealed record CrewMember(string Role, string Goal, IReadOnlyList<string> Tools);

public sealed record CrewTask(string Description, string? Member);

/// <summary>A crew: members (roles with goals and tools), tasks, and how they work (sequential or hierarchical).</summary>
public sealed record CrewSpec(string Process, IReadOnlyList<CrewMember> Members, IReadOnlyList<CrewTask> Tasks)
{
    public static CrewSpec? Parse(string? options)
    {
        if (options is null) return null;
        var root = JsonNode.Parse(options);
        if (root?["crew"] is not JsonObject crew) return null;
        var members = (crew["members"] as JsonArray ?? []).Select(m => new CrewMember(
            (string?)m?["role"] ?? "", (string?)m?["goal"] ?? "",
            (m?["tools"] as JsonArray ?? []).Select(t => (string?)t ?? "").ToList())).ToList();
        var tasks = (crew["tasks"] as JsonArray ?? []).Select(t => new CrewTask((string?)t?["description"] ?? "", (string?)t?["member"])).ToList();
        return new CrewSpec((string?)crew["process"] ?? "sequential", members, tasks);
    }

    /// <summary>The repository a coder run was given (already checked against the allowlist when the run was created).</summary>
    public static string? Repository(string? options) =>
        options is null ? null : (string?)JsonNode.Parse(options)?["repository"];
}

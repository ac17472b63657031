using Sutazai.Agents;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Server.Tasks;

namespace Sutazai.Server.Agents;

public sealed record StartRunRequest(string? Input, Guid? ConversationId, List<Guid>? CollectionIds, string? Model, JsonElement? Options);

public sealed record ApprovalDecision(bool? Approve, JsonElement? EditedArguments);

public sealed record ApprovalView(Guid Id, string Tool, JsonElement Arguments, string Risk, string Status, DateTime CreatedAt);


public sealed record AgentRunView(
    Guid Id, string Agent, string AgentName, string Status, string Input, string? Model, Guid? ConversationId,
    IReadOnlyList<StepView> Steps, IReadOnlyList<ApprovalView> PendingApprovals, string? Output, string? Error,
    IReadOnlyList<ArtifactView> Artifacts, object Usage, DateTime CreatedAt, DateTime? StartedAt, DateTime? FinishedAt)
{
    public static ApprovalView Approval(AgentApproval a) => new(a.Id, a.Tool, JsonDocument.Parse(a.EditedArguments ?? a.Arguments).RootElement.Clone(), a.Risk, a.Status, a.CreatedAt);
}

public sealed record RunSummary(Guid Id, string Agent, string AgentName, string Status, string Input, int StepCount, DateTime CreatedAt, DateTime? FinishedAt);

/// <summary>Starting, reading, cancelling and deciding on runs: one path for REST and /ws/jarvis.</summary>
public sealed class AgentRunService(
    AppDbContext db,
    AgentCatalog catalog,
    ITaskQueue queue,
    RunHub hub,
    AgentWorkspaces workspaces,
    RunArchive archive,
    AgentAccess access,
    IOptions<AgentOptions> options,
    TimeProvider time)
{
    public const string TaskKind = "agent.run";

    public abstract record StartResult
    {
        public sealed record Started(AgentRun Run) : StartResult;

        public sealed record NotFound : StartResult;

        public sealed record Invalid(Dictionary<string, string[]> Errors) : StartResult;

        /// <summary>The user's role may not use a tool family the run needs (<see cref="AgentAccess.ForbiddenFamily"/>).</summary>
        public sealed record Forbidden(string Family, string Detail) : StartResult;
    }

    public async Task<StartResult> StartAsync(Guid userId, string agentId, StartRunRequest request, CancellationToken ct)
    {
        var agent = await catalog.FindAsync(userId, agentId, ct);
        var user = await db.Users.AsNoTracking().Where(u => u.Id == userId).Select(u => new { u.UserName, u.Role }).FirstOrDefaultAsync(ct);
        if (agent is null || user is null) return new StartResult.NotFound();
        var errors = new Dictionary<string, string[]>();
        var input = request.Input?.Trim() ?? "";
        if (input.Length == 0) errors["input"] = ["Input is required."];
        else if (input.Length > options.Value.MaxInputChars) errors["input"] = [$"Input must be at most {options.Value.MaxInputChars} characters."];
        if (request.Model is { Length: > 200 }) errors["model"] = ["Model must be at most 200 characters."];
        if (request.ConversationId is { } cid && !await db.Conversations.AnyAsync(c => c.Id == cid && c.UserId == userId, ct))
            errors["conversationId"] = ["No conversation with that id."];
        if (request.CollectionIds is { Count: > 0 } collections)
        {
            var scope = await Knowledge.KnowledgeAccess.ScopeAsync(db, userId, ct);
            var readable = await db.Collections.Where(c => collections.Contains(c.Id) && (c.OwnerId == userId || scope.SharedCollectionIds.Contains(c.Id))).Select(c => c.Id).ToListAsync(ct);
            if (readable.Count != collections.Distinct().Count()) errors["collectionIds"] = ["One or more collections do not exist or are not shared with you."];
        }
        var runOptions = ValidateOptions(agent, request.Options, user.UserName ?? "", user.Role, errors);
        if (errors.Count > 0) return new StartResult.Invalid(errors);
        if (access.ForbiddenFamily(user.Role, AgentAccess.FamiliesOf(agent, runOptions)) is { } family)
            return new StartResult.Forbidden(family,
                $"Your role ({user.Role}) may not use the tool family '{family}', which the agent '{agent.Name}' needs ({AgentAccess.FamiliesSetting(user.Role)}).");

        var run = new AgentRun
        {
            Id = Guid.NewGuid(),
            UserId = userId,
            AgentId = agent.Id,
            AgentName = agent.Name,
            Input = input,
            Options = runOptions,
            ConversationId = request.ConversationId,
            CollectionIds = request.CollectionIds is { Count: > 0 } c ? string.Join(",", c.Distinct()) : null,
            Model = string.IsNullOrWhiteSpace(request.Model) ? null : request.Model,
            CreatedAt = time.GetUtcNow().UtcDateTime,
        };
        db.AgentRuns.Add(run);
        await db.SaveChangesAsync(ct);
        await queue.EnqueueAsync(TaskKind, JsonSerializer.Serialize(new { runId = run.Id }), ct);
        hub.Publish(new RunEvent("status", run.Id, userId, new { status = run.Status, agent = agent.Id, input }));
        return new StartResult.Started(run);
    }

    /// <summary>Checks agent-specific options (a crew's members and tasks, the coder's repository); returns them as stored.</summary>
    private string? ValidateOptions(AgentDefinition agent, JsonElement? raw, string userName, string role, Dictionary<string, string[]> errors)
    {
        if (raw is not { ValueKind: JsonValueKind.Object } value)
        {
            if (raw is { ValueKind: not (JsonValueKind.Null or JsonValueKind.Undefined) }) errors["options"] = ["Options must be a JSON object."];
            else if (agent.Kind == AgentKind.Crew) errors["options.crew"] = ["A crew run needs options.crew: {process, members:[{role, goal, tools}], tasks:[{description, member?}]}."];
            return null;
        }
        var text = value.GetRawText();
        if (agent.Kind == AgentKind.Crew)
        {
            var crew = CrewSpec.Parse(text);
            if (crew is null) errors["options.crew"] = ["A crew run needs options.crew: {process, members:[{role, goal, tools}], tasks:[{description, member?}]}."];
            else
            {
                if (crew.Process is not ("sequential" or "hierarchical")) errors["options.crew.process"] = ["Process must be 'sequential' or 'hierarchical'."];
                if (crew.Members.Count is 0 or > 10 || crew.Members.Any(m => string.IsNullOrWhiteSpace(m.Role)))
                    errors["options.crew.members"] = ["A crew needs 1 to 10 members, each with a role."];
                else if (crew.Members.Select(m => m.Role.ToLowerInvariant()).Distinct().Count() != crew.Members.Count)
                    errors["options.crew.members"] = ["Member roles must be unique."];
                if (crew.Tasks.Count is 0 or > 20 || crew.Tasks.Any(t => string.IsNullOrWhiteSpace(t.Description)))
                    errors["options.crew.tasks"] = ["A crew needs 1 to 20 tasks, each with a description."];
                else if (crew.Tasks.Any(t => t.Member is { } m && crew.Members.All(x => !string.Equals(x.Role, m, StringComparison.OrdinalIgnoreCase))))
                    errors["options.crew.tasks"] = ["Each task's member must be one of the members' roles."];
            }
        }
        if (value.TryGetProperty("repository", out var repo))
        {
            var path = repo.ValueKind == JsonValueKind.String ? repo.GetString() : null;
            // One answer for "not listed" and "listed for others", so the error does not tell which paths exist.
            if (agent.Id != "coder") errors["options.repository"] = ["Only the coder agent works in a repository."];
            else if (path is null || !Path.IsPathFullyQualified(path) || !access.MayUseRepository(path, userName, role))
                errors["options.repository"] = ["The repository must be one an admin allowed for you (Sutazai:Agents:CoderRepositories)."];
            else if (!Directory.Exists(Path.Combine(path, ".git")))
                errors["options.repository"] = ["That path is not a git repository."];
        }
        return text;
    }

    public async Task<AgentRunView?> ViewAsync(Guid userId, Guid runId, CancellationToken ct)
    {
        var run = await db.AgentRuns.AsNoTracking().FirstOrDefaultAsync(r => r.Id == runId && r.UserId == userId, ct);
        if (run is null) return null;
        var steps = await db.AgentRunSteps.AsNoTracking().Where(s => s.RunId == runId).OrderBy(s => s.Index).ToListAsync(ct);
        var pending = await db.AgentApprovals.AsNoTracking().Where(a => a.RunId == runId && a.Status == "pending").OrderBy(a => a.CreatedAt).ToListAsync(ct);
        return new AgentRunView(run.Id, run.AgentId, run.AgentName, run.Status, run.Input, run.Model, run.ConversationId,
            steps.Select(StepView.From).ToList(), pending.Select(AgentRunView.Approval).ToList(), run.Output, run.Error,
            await ArtifactsAsync(run, ct), new { inputTokens = run.InputTokens, outputTokens = run.OutputTokens, totalTokens = run.InputTokens + run.OutputTokens },
            run.CreatedAt, run.StartedAt, run.FinishedAt);
    }

    /// <summary>The user's runs, newest first, optionally of one agent or status (REST, /ws/jarvis history, the UI).</summary>
    public Task<List<RunSummary>> ListAsync(Guid userId, string? agent, string? status, int limit, CancellationToken ct)
    {
        var query = db.AgentRuns.AsNoTracking().Where(r => r.UserId == userId);
        if (!string.IsNullOrEmpty(agent)) query = query.Where(r => r.AgentId == agent);
        if (!string.IsNullOrEmpty(status)) query = query.Where(r => r.Status == status);
        return query.OrderByDescending(r => r.CreatedAt).Take(Math.Clamp(limit, 1, 200))
            .Select(r => new RunSummary(r.Id, r.AgentId, r.AgentName, r.Status, r.Input, r.StepCount, r.CreatedAt, r.FinishedAt)).ToListAsync(ct);
    }

    /// <summary>Every approval of the owner's run (pending and decided), oldest first; empty for another user's run.</summary>
    public async Task<List<ApprovalView>> ApprovalsAsync(Guid userId, Guid runId, CancellationToken ct)
    {
        var rows = await (from a in db.AgentApprovals.AsNoTracking()
                          join r in db.AgentRuns.AsNoTracking() on a.RunId equals r.Id
                          where a.RunId == runId && r.UserId == userId
                          orderby a.CreatedAt
                          select a).ToListAsync(ct);
        return rows.Select(AgentRunView.Approval).ToList();
    }

    /// <summary>
    /// The files in the run's own workspace (a coder run's repository is not listed as artifacts): from the workspace
    /// folder on the node that has it, otherwise from the list the node that ran it stored (several nodes).
    /// </summary>
    public async Task<IReadOnlyList<ArtifactView>> ArtifactsAsync(AgentRun run, CancellationToken ct)
    {
        if (CrewSpec.Repository(run.Options) is not null) return [];
        var root = workspaces.For(run);
        if (Directory.Exists(root)) return RunArchive.List(root);
        return await archive.ListStoredAsync(run.Id, ct) ?? [];
    }

    public Task<AgentRun?> FindAsync(Guid userId, Guid runId, CancellationToken ct) =>
        db.AgentRuns.AsNoTracking().FirstOrDefaultAsync(r => r.Id == runId && r.UserId == userId, ct);

    /// <summary>Cancels a run that has not finished; null when there is no such run of the user's.</summary>
    public async Task<(bool Cancelled, string Status)?> CancelAsync(Guid userId, Guid runId, CancellationToken ct)
    {
        var run = await FindAsync(userId, runId, ct);
        if (run is null) return null;
        var now = time.GetUtcNow().UtcDateTime;
        var updated = await db.AgentRuns.Where(r => r.Id == runId && (r.Status == AgentRunStatus.Queued || r.Status == AgentRunStatus.Running || r.Status == AgentRunStatus.WaitingApproval))
            .ExecuteUpdateAsync(s => s.SetProperty(r => r.Status, AgentRunStatus.Cancelled).SetProperty(r => r.Error, "Cancelled by the user.").SetProperty(r => r.FinishedAt, now), ct);
        if (updated == 0) return (false, run.Status);
        await db.AgentApprovals.Where(a => a.RunId == runId && a.Status == "pending")
            .ExecuteUpdateAsync(s => s.SetProperty(a => a.Status, "denied").SetProperty(a => a.DecidedAt, now).SetProperty(a => a.DecidedBy, userId), ct);
        if (!hub.Cancel(runId))
        {
            hub.Publish(new RunEvent("status", runId, userId, new { status = AgentRunStatus.Cancelled }));
            hub.Publish(new RunEvent("error", runId, userId, new { status = AgentRunStatus.Cancelled, output = (string?)null, error = "Cancelled by the user." }));
        }
        return (true, AgentRunStatus.Cancelled);
    }

    public abstract record DecideResult
    {
        public sealed record Done(AgentApproval Approval) : DecideResult;

        public sealed record NotFound(string Detail) : DecideResult;

        public sealed record Conflict(string Detail) : DecideResult;

        public sealed record Invalid(string Field, string Detail) : DecideResult;
    }

    /// <summary>Approves or denies a pending tool call; the run is queued again to go on from where it stopped.</summary>
    public async Task<DecideResult> DecideAsync(Guid userId, Guid runId, Guid approvalId, ApprovalDecision decision, CancellationToken ct)
    {
        if (decision.Approve is not { } approve) return new DecideResult.Invalid("approve", "approve (true or false) is required.");
        string? edited = null;
        if (decision.EditedArguments is { ValueKind: not (JsonValueKind.Null or JsonValueKind.Undefined) } e)
        {
            if (e.ValueKind != JsonValueKind.Object) return new DecideResult.Invalid("editedArguments", "Edited arguments must be a JSON object.");
            if (!approve) return new DecideResult.Invalid("editedArguments", "Edited arguments only go with approve: true.");
            edited = e.GetRawText();
        }
        var run = await FindAsync(userId, runId, ct);
        var approval = run is null ? null : await db.AgentApprovals.AsNoTracking().FirstOrDefaultAsync(a => a.Id == approvalId && a.RunId == runId, ct);
        if (run is null || approval is null) return new DecideResult.NotFound("No such approval in a run of yours.");
        var now = time.GetUtcNow().UtcDateTime;
        var status = approve ? "approved" : "denied";
        var updated = await db.AgentApprovals.Where(a => a.Id == approvalId && a.Status == "pending")
            .ExecuteUpdateAsync(s => s.SetProperty(a => a.Status, status).SetProperty(a => a.EditedArguments, edited)
                .SetProperty(a => a.DecidedAt, now).SetProperty(a => a.DecidedBy, userId), ct);
        if (updated == 0) return new DecideResult.Conflict($"This approval was already decided ({approval.Status}).");
        var requeued = await db.AgentRuns.Where(r => r.Id == runId && r.Status == AgentRunStatus.WaitingApproval)
            .ExecuteUpdateAsync(s => s.SetProperty(r => r.Status, AgentRunStatus.Queued), ct);
        if (requeued > 0) await queue.EnqueueAsync(TaskKind, JsonSerializer.Serialize(new { runId }), ct);
        hub.Publish(new RunEvent("approval_decided", runId, userId, new { approvalId, status }));
        approval.Status = status;
        approval.EditedArguments = edited;
        return new DecideResult.Done(approval);
    }
}

/// <summary>Consumes <c>agent.run</c> tasks: executes or resumes the run. Idempotent: a finished run, or one another worker holds, is left alone.</summary>
public sealed class AgentRunHandler(AgentRunner runner) : ITaskHandler
{
    public string Kind => AgentRunService.TaskKind;

    public Task HandleAsync(TaskMessage message, CancellationToken ct)
    {
        using var document = JsonDocument.Parse(message.Payload);
        var runId = document.RootElement.GetProperty("runId").GetGuid();
        return runner.ExecuteAsync(runId, ct);
    }
}

using Sutazai.Agents;
using System.IO.Compression;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Inference;
using Sutazai.Agents.Tools;
using Sutazai.Server.Hosting;
using Sutazai.Server.Identity;
using Sutazai.Server.Inference;

namespace Sutazai.Server.Agents;

public sealed record CustomAgentRequest(string? Name, string? Description, string? Instructions, string? Model, List<string>? Tools, int? MaxSteps, int? MaxTokens, int? TimeoutSeconds);

public sealed record ToolFamilyHealth(string Name, bool Available, string? Reason);

public sealed record AgentResponse(
    string Id, string Name, string Description, bool BuiltIn, string? OriginalName, IReadOnlyList<string> Tools, string? Model,
    object Limits, object Health, string? Instructions);

public sealed record ToolPolicyRequest(bool? PreApproved);

public sealed record MemoryBlockRequest(string? Value);

public sealed record MemoryPassageRequest(string? Text);

public static class AgentsApi
{
    public static IEndpointRouteBuilder MapAgentsApi(this IEndpointRouteBuilder routes)
    {
        var agents = routes.MapGroup("/api/v1/agents").WithTags("Agents").RequireAuthorization(ScopePolicies.Agents);
        agents.MapGet("", ListAgents).WithSummary("The built-in agents and mine, each with its health (model and tools available).");
        agents.MapGet("/{agentId}", GetAgent);
        agents.MapPost("", CreateAgent).WithSummary("Create a custom agent (instructions + tool families + model + limits).");
        agents.MapPut("/{id:guid}", UpdateAgent).WithSummary("Change a custom agent.");
        agents.MapDelete("/{id:guid}", DeleteAgent).WithSummary("Delete a custom agent (its runs are kept).");
        agents.MapPost("/{agentId}/runs", StartRun).RequireRateLimiting(ServiceDefaults.ExpensiveRateLimitPolicy).WithSummary("Start a run (durable job) → 202 {runId}.");

        var runs = routes.MapGroup("/api/v1/runs").WithTags("Agents").RequireAuthorization(ScopePolicies.Agents);
        runs.MapGet("", ListRuns).WithSummary("My runs, newest first.");
        runs.MapGet("/{id:guid}", GetRun).WithSummary("A run with its steps, pending approvals, output, artifacts and usage.");
        runs.MapGet("/{id:guid}/events", Events).WithSummary("The run's events (SSE): stored steps first, then live ones until it ends or waits.");
        runs.MapPost("/{id:guid}/cancel", Cancel).WithSummary("Cancel a run; running tools are killed.");
        runs.MapPost("/{id:guid}/approvals/{approvalId:guid}", Decide).WithSummary("Approve (optionally with edited arguments) or deny a tool call.");
        runs.MapGet("/{id:guid}/artifacts", Artifacts).WithSummary("Files the run wrote to its workspace.");
        runs.MapGet("/{id:guid}/artifacts/workspace.zip", WorkspaceZip).WithSummary("The run's workspace as a zip.");

        var memory = routes.MapGroup("/api/v1/memory").WithTags("Memory").RequireAuthorization(ScopePolicies.Agents);
        memory.MapGet("", GetMemory).WithSummary("My core memory blocks and newest archival passages.");
        memory.MapPut("/blocks/{label}", SetBlock).WithSummary("Set a core memory block (persona or human).");
        memory.MapGet("/passages", SearchPassages).WithSummary("Archival memory: newest, or the closest in meaning to q.");
        memory.MapPost("/passages", AddPassage).WithSummary("Add an archival memory passage.");
        memory.MapDelete("/passages/{id:guid}", DeletePassage);

        var admin = routes.MapGroup("/api/v1/admin").WithTags("Admin").RequireAuthorization(IdentitySetup.AdminPolicy);
        admin.MapGet("/tools", ListTools).WithSummary("Every agent tool, whether it has side effects and whether it is pre-approved.");
        admin.MapPut("/tools/{tool}", SetToolPolicy).WithSummary("Pre-approve a tool with side effects (or require approval again).");
        admin.MapGet("/approvals", ApprovalAudit).WithSummary("Audit of every approval decision, newest first.");
        return routes;
    }

    private static ProblemHttpResult RunNotFound() => Problems.NotFound("No run with that id.");

    // ---- agents ---------------------------------------------------------------------------------------------------

    private static async Task<Ok<List<AgentResponse>>> ListAgents(HttpContext http, AppDbContext db, ModelCatalog models, IEnumerable<IToolProvider> tools, CancellationToken ct)
    {
        var userId = http.User.UserId();
        var custom = await db.CustomAgents.AsNoTracking().Where(a => a.OwnerId == userId).OrderBy(a => a.Name).ToListAsync(ct);
        var listing = await models.ListAsync(ct);
        var all = AgentCatalog.BuiltIns.Concat(custom.Select(AgentCatalog.FromCustom));
        return TypedResults.Ok(all.Select(a => Describe(a, listing, tools.ToList(), withInstructions: false)).ToList());
    }

    private static async Task<Results<Ok<AgentResponse>, ProblemHttpResult>> GetAgent(string agentId, HttpContext http, AgentCatalog catalog, ModelCatalog models, IEnumerable<IToolProvider> tools, CancellationToken ct)
    {
        var agent = await catalog.FindAsync(http.User.UserId(), agentId, ct);
        if (agent is null) return Problems.NotFound("No agent with that id.");
        return TypedResults.Ok(Describe(agent, await models.ListAsync(ct), tools.ToList(), withInstructions: true));
    }

    private static AgentResponse Describe(AgentDefinition a, ModelCatalog.Listing listing, IReadOnlyList<IToolProvider> providers, bool withInstructions)
    {
        var families = a.Kind == AgentKind.Crew ? [] : a.Tools;
        ToolFamilyHealth HealthOf(string name)
        {
            if (providers.FirstOrDefault(p => p.Name == name) is not { } provider) return new(name, false, "This tool family is not installed on the server.");
            var (available, reason) = provider.Health();
            return new(name, available, reason);
        }
        var tools = families.Select(HealthOf).ToList();
        var model = a.Model is { Length: > 0 } wanted ? listing.Models.FirstOrDefault(m => m.Id == wanted || $"{m.Provider}/{m.Id}" == wanted) : listing.Models.FirstOrDefault();
        var modelDetail = model is not null ? null
            : a.Model is { Length: > 0 } ? $"The model '{a.Model}' is not available."
            : "No model is available: pull one (POST /api/v1/models/pull) or connect Ollama.";
        return new AgentResponse(a.Id, a.Name, a.Description, a.BuiltIn, a.OriginalName, families, a.Model,
            new { maxSteps = a.Limits.MaxSteps, maxTokens = a.Limits.MaxTokens, timeoutSeconds = (int)a.Limits.Timeout.TotalSeconds },
            new
            {
                healthy = model is not null && tools.All(t => t.Available),
                modelAvailable = model is not null,
                model = model?.Id,
                modelDetail,
                toolsAvailable = tools.All(t => t.Available),
                tools,
            },
            withInstructions ? a.Instructions : null);
    }

    private static Dictionary<string, string[]> ValidateAgent(CustomAgentRequest r, IReadOnlyList<IToolProvider> providers)
    {
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrWhiteSpace(r.Name)) errors["name"] = ["Name is required."];
        else if (r.Name.Trim().Length > 100) errors["name"] = ["Name must be at most 100 characters."];
        if (string.IsNullOrWhiteSpace(r.Instructions)) errors["instructions"] = ["Instructions are required."];
        else if (r.Instructions.Length > 16000) errors["instructions"] = ["Instructions must be at most 16000 characters."];
        if (r.Description is { Length: > 1000 }) errors["description"] = ["Description must be at most 1000 characters."];
        if (r.Model is { Length: > 200 }) errors["model"] = ["Model must be at most 200 characters."];
        var unknown = (r.Tools ?? []).Where(t => providers.All(p => p.Name != t)).ToList();
        if (unknown.Count > 0) errors["tools"] = [$"Unknown tool families: {string.Join(", ", unknown)}. Known: {string.Join(", ", providers.Select(p => p.Name))}."];
        if (r.MaxSteps is < 1 or > 100) errors["maxSteps"] = ["maxSteps must be between 1 and 100."];
        if (r.MaxTokens is < 256 or > 1_000_000) errors["maxTokens"] = ["maxTokens must be between 256 and 1000000."];
        if (r.TimeoutSeconds is < 1 or > 86_400) errors["timeoutSeconds"] = ["timeoutSeconds must be between 1 and 86400."];
        return errors;
    }

    private static void Apply(CustomAgent a, CustomAgentRequest r)
    {
        a.Name = r.Name!.Trim();
        a.Description = string.IsNullOrWhiteSpace(r.Description) ? null : r.Description.Trim();
        a.Instructions = r.Instructions!.Trim();
        a.Model = string.IsNullOrWhiteSpace(r.Model) ? null : r.Model.Trim();
        a.Tools = string.Join(",", (r.Tools ?? []).Distinct());
        a.MaxSteps = r.MaxSteps ?? AgentCatalog.DefaultLimits.MaxSteps;
        a.MaxTokens = r.MaxTokens ?? AgentCatalog.DefaultLimits.MaxTokens;
        a.TimeoutSeconds = r.TimeoutSeconds ?? (int)AgentCatalog.DefaultLimits.Timeout.TotalSeconds;
    }

    private static async Task<Results<Created<AgentResponse>, ProblemHttpResult>> CreateAgent(CustomAgentRequest request, HttpContext http, AppDbContext db, ModelCatalog models,
        IEnumerable<IToolProvider> tools, TimeProvider time, CancellationToken ct)
    {
        var providers = tools.ToList();
        var errors = ValidateAgent(request, providers);
        if (errors.Count > 0) return Problems.Validation(errors);
        var userId = http.User.UserId();
        var name = request.Name!.Trim();
        if (AgentCatalog.BuiltIns.Any(b => string.Equals(b.Id, name, StringComparison.OrdinalIgnoreCase)) ||
            await db.CustomAgents.AnyAsync(a => a.OwnerId == userId && a.Name == name, ct))
            return Problems.Conflict($"You already have an agent named '{name}'.");
        var now = time.GetUtcNow().UtcDateTime;
        var agent = new CustomAgent { Id = Guid.NewGuid(), OwnerId = userId, Name = name, Instructions = "", CreatedAt = now, UpdatedAt = now };
        Apply(agent, request);
        db.CustomAgents.Add(agent);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException ex) when (Data.DbErrors.IsUniqueViolation(ex))
        {
            return Problems.Conflict($"You already have an agent named '{name}'.");
        }
        return TypedResults.Created($"/api/v1/agents/{agent.Id}", Describe(AgentCatalog.FromCustom(agent), await models.ListAsync(ct), providers, withInstructions: true));
    }

    private static async Task<Results<Ok<AgentResponse>, ProblemHttpResult>> UpdateAgent(Guid id, CustomAgentRequest request, HttpContext http, AppDbContext db, ModelCatalog models,
        IEnumerable<IToolProvider> tools, TimeProvider time, CancellationToken ct)
    {
        var providers = tools.ToList();
        var userId = http.User.UserId();
        var agent = await db.CustomAgents.FirstOrDefaultAsync(a => a.Id == id && a.OwnerId == userId, ct);
        if (agent is null) return Problems.NotFound("No agent with that id.");
        var errors = ValidateAgent(request, providers);
        if (errors.Count > 0) return Problems.Validation(errors);
        Apply(agent, request);
        agent.UpdatedAt = time.GetUtcNow().UtcDateTime;
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException ex) when (Data.DbErrors.IsUniqueViolation(ex))
        {
            return Problems.Conflict($"You already have an agent named '{agent.Name}'.");
        }
        return TypedResults.Ok(Describe(AgentCatalog.FromCustom(agent), await models.ListAsync(ct), providers, withInstructions: true));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteAgent(Guid id, HttpContext http, AppDbContext db, CancellationToken ct)
    {
        var userId = http.User.UserId();
        return await db.CustomAgents.Where(a => a.Id == id && a.OwnerId == userId).ExecuteDeleteAsync(ct) > 0
            ? TypedResults.NoContent()
            : Problems.NotFound("No agent with that id.");
    }

    // ---- runs -----------------------------------------------------------------------------------------------------

    private static async Task<Results<Accepted<object>, ProblemHttpResult>> StartRun(string agentId, StartRunRequest request, HttpContext http, AgentRunService service, CancellationToken ct)
    {
        switch (await service.StartAsync(http.User.UserId(), agentId, request, ct))
        {
            case AgentRunService.StartResult.Started started:
                return TypedResults.Accepted($"/api/v1/runs/{started.Run.Id}", (object)new { runId = started.Run.Id, status = started.Run.Status });
            case AgentRunService.StartResult.Invalid invalid:
                return Problems.Validation(invalid.Errors);
            case AgentRunService.StartResult.Forbidden forbidden:
                return Problems.Forbidden(forbidden.Detail, new Dictionary<string, object?> { ["family"] = forbidden.Family });
            default:
                return Problems.NotFound("No agent with that id.");
        }
    }

    private static async Task<Ok<List<RunSummary>>> ListRuns(HttpContext http, AgentRunService service, string? agent = null, string? status = null, int limit = 50, CancellationToken ct = default) =>
        TypedResults.Ok(await service.ListAsync(http.User.UserId(), agent, status, limit, ct));

    private static async Task<Results<Ok<AgentRunView>, ProblemHttpResult>> GetRun(Guid id, HttpContext http, AgentRunService service, CancellationToken ct) =>
        await service.ViewAsync(http.User.UserId(), id, ct) is { } view ? TypedResults.Ok(view) : RunNotFound();

    /// <summary>
    /// Subscribes first, then replays the stored steps, then forwards live events (skipping steps already sent) and
    /// polls the store every second, so a run executed by a worker on another node is followed too.
    /// </summary>
    private static async Task Events(Guid id, HttpContext http, AppDbContext db, RunHub hub, CancellationToken ct)
    {
        var userId = http.User.UserId();
        if (!await db.AgentRuns.AnyAsync(r => r.Id == id && r.UserId == userId, ct))
        {
            await RunNotFound().ExecuteAsync(http);
            return;
        }
        using var subscription = hub.Watch(id);
        var sse = new ServerSentEvents(http.Response);
        sse.Start();
        var sent = -1;
        string? lastStatus = null;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                // Status first, then steps: a step is stored before the status it leads to, so none is missed.
                var run = await db.AgentRuns.AsNoTracking().Where(r => r.Id == id).Select(r => new { r.Status, r.Output, r.Error }).FirstAsync(ct);
                var steps = await db.AgentRunSteps.AsNoTracking().Where(s => s.RunId == id && s.Index > sent).OrderBy(s => s.Index).ToListAsync(ct);
                foreach (var step in steps)
                {
                    await sse.WriteAsync("step", StepView.From(step), ct);
                    sent = step.Index;
                }
                if (run.Status != lastStatus)
                {
                    lastStatus = run.Status;
                    await sse.WriteAsync("status", new { status = run.Status }, ct);
                }
                if (AgentRunStatus.IsTerminal(run.Status))
                {
                    await sse.WriteAsync(run.Status == AgentRunStatus.Succeeded ? "complete" : "error", new { status = run.Status, output = run.Output, error = run.Error }, ct);
                    return;
                }
                if (run.Status == AgentRunStatus.WaitingApproval)
                {
                    var pending = await db.AgentApprovals.AsNoTracking().Where(a => a.RunId == id && a.Status == "pending").ToListAsync(ct);
                    foreach (var approval in pending) await sse.WriteAsync("approval_required", AgentRunView.Approval(approval), ct);
                    return;
                }
                // Wait for the next local event (tokens are forwarded as they come) or a second, then re-read the store.
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
                wait.CancelAfter(TimeSpan.FromSeconds(1));
                try
                {
                    while (await subscription.Reader.WaitToReadAsync(wait.Token))
                    {
                        var stepArrived = false;
                        while (subscription.Reader.TryRead(out var e))
                        {
                            if (e.Type == "token") await sse.WriteAsync("token", e.Data, ct);
                            else stepArrived = true;
                        }
                        if (stepArrived) break;
                    }
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    // A second without a step event: poll the store.
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The client went away; the run goes on.
        }
    }

    private static async Task<Results<Ok<object>, ProblemHttpResult>> Cancel(Guid id, HttpContext http, AgentRunService service, CancellationToken ct)
    {
        var result = await service.CancelAsync(http.User.UserId(), id, ct);
        if (result is null) return RunNotFound();
        return result.Value.Cancelled
            ? TypedResults.Ok((object)new { id, status = result.Value.Status })
            : Problems.Conflict($"The run has already finished ({result.Value.Status}).");
    }

    private static async Task<Results<Ok<ApprovalView>, ProblemHttpResult>> Decide(Guid id, Guid approvalId, ApprovalDecision decision, HttpContext http, AgentRunService service, CancellationToken ct) =>
        await service.DecideAsync(http.User.UserId(), id, approvalId, decision, ct) switch
        {
            AgentRunService.DecideResult.Done done => TypedResults.Ok(AgentRunView.Approval(done.Approval)),
            AgentRunService.DecideResult.Invalid invalid => Problems.Validation(invalid.Field, invalid.Detail),
            AgentRunService.DecideResult.Conflict conflict => Problems.Conflict(conflict.Detail),
            AgentRunService.DecideResult.NotFound notFound => Problems.NotFound(notFound.Detail),
            _ => throw new InvalidOperationException("Unknown decision result."),
        };

    private static async Task<Results<Ok<IReadOnlyList<ArtifactView>>, ProblemHttpResult>> Artifacts(Guid id, HttpContext http, AgentRunService service, CancellationToken ct) =>
        await service.FindAsync(http.User.UserId(), id, ct) is { } run ? TypedResults.Ok(await service.ArtifactsAsync(run, ct)) : RunNotFound();

    private static Task WorkspaceZip(Guid id, HttpContext http, AgentRunService service, AgentWorkspaces workspaces, RunArchive archive, CancellationToken ct) =>
        Sutazai.Server.Agents.WorkspaceZip.WriteAsync(http.User.UserId(), id, http, service, workspaces, archive, ct);


    // ---- memory ---------------------------------------------------------------------------------------------------

    private static async Task<Ok<object>> GetMemory(HttpContext http, MemoryStore store, CancellationToken ct)
    {
        var userId = http.User.UserId();
        var blocks = await store.BlocksAsync(userId, ct);
        var passages = await store.ListPassagesAsync(userId, 50, ct);
        return TypedResults.Ok((object)new
        {
            blocks = blocks.Select(b => new { label = b.Label, value = b.Value, limit = MemoryStore.BlockLimit }),
            passages = passages.Select(p => new { id = p.Id, text = p.Text, createdAt = p.CreatedAt }),
        });
    }

    private static async Task<Results<Ok<object>, ProblemHttpResult>> SetBlock(string label, MemoryBlockRequest request, HttpContext http, MemoryStore store, CancellationToken ct)
    {
        if (!MemoryStore.DefaultBlocks.ContainsKey(label)) return Problems.NotFound($"No memory block '{label}'. Blocks: {string.Join(", ", MemoryStore.DefaultBlocks.Keys)}.");
        if (request.Value is null) return Problems.Validation("value", "value is required.");
        if (request.Value.Length > MemoryStore.BlockLimit) return Problems.Validation("value", $"value must be at most {MemoryStore.BlockLimit} characters.");
        await store.SetBlockAsync(http.User.UserId(), label, request.Value, ct);
        return TypedResults.Ok((object)new { label, value = request.Value });
    }

    private static async Task<Ok<object>> SearchPassages(HttpContext http, MemoryStore store, string? q = null, int k = 10, CancellationToken ct = default)
    {
        var userId = http.User.UserId();
        k = Math.Clamp(k, 1, 100);
        if (string.IsNullOrWhiteSpace(q))
            return TypedResults.Ok((object)(await store.ListPassagesAsync(userId, k, ct)).Select(p => new { id = p.Id, text = p.Text, createdAt = p.CreatedAt, score = (double?)null }));
        var hits = await store.SearchPassagesAsync(userId, q, k, ct);
        return TypedResults.Ok((object)hits.Select(h => new { id = h.Passage.Id, text = h.Passage.Text, createdAt = h.Passage.CreatedAt, score = (double?)Math.Round(h.Score, 4) }));
    }

    private static async Task<Results<Created<object>, ProblemHttpResult>> AddPassage(MemoryPassageRequest request, HttpContext http, MemoryStore store, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(request.Text)) return Problems.Validation("text", "text is required.");
        if (request.Text.Length > 8000) return Problems.Validation("text", "text must be at most 8000 characters.");
        var passage = await store.InsertPassageAsync(http.User.UserId(), request.Text.Trim(), ct);
        return TypedResults.Created($"/api/v1/memory/passages/{passage.Id}", (object)new { id = passage.Id, text = passage.Text, createdAt = passage.CreatedAt });
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeletePassage(Guid id, HttpContext http, MemoryStore store, CancellationToken ct) =>
        await store.DeletePassageAsync(http.User.UserId(), id, ct) ? TypedResults.NoContent() : Problems.NotFound("No passage with that id.");

    // ---- admin ----------------------------------------------------------------------------------------------------

    private static async Task<Ok<List<ToolView>>> ListTools(AgentAdministration admin, CancellationToken ct) =>
        TypedResults.Ok(await admin.ToolsAsync(ct));

    private static async Task<Results<Ok<object>, ProblemHttpResult>> SetToolPolicy(string tool, ToolPolicyRequest request, HttpContext http, AgentAdministration admin, CancellationToken ct) =>
        await admin.SetPolicyAsync(http.User.UserId(), tool, request.PreApproved, ct) switch
        {
            AgentAdministration.SetPolicyResult.Done done => TypedResults.Ok((object)new { tool = done.Tool, preApproved = done.PreApproved }),
            AgentAdministration.SetPolicyResult.Invalid invalid => Problems.Validation(invalid.Field, invalid.Detail),
            AgentAdministration.SetPolicyResult.NotFound notFound => Problems.NotFound(notFound.Detail),
            _ => throw new InvalidOperationException("Unknown policy result."),
        };

    private static async Task<Ok<List<ApprovalAuditRow>>> ApprovalAudit(AgentAdministration admin, int limit = 100, CancellationToken ct = default) =>
        TypedResults.Ok(await admin.ApprovalAuditAsync(limit, ct));
}

using Sutazai.Agents;
using System.ComponentModel;
using Microsoft.AspNetCore.Authorization;
using Microsoft.EntityFrameworkCore;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;
using Sutazai.Data;
using Sutazai.Server.Agents;
using Sutazai.Agents.Tools;
using Sutazai.Server.Identity;
using Sutazai.Server.Knowledge;

namespace Sutazai.Server.Mcp;

public sealed record McpAgentSummary(string Id, string Name, string Description, bool BuiltIn, IReadOnlyList<string> Tools);

public sealed record McpRunStarted(Guid RunId, string Status, string Agent);

/// <summary>
/// The tools SutazAI serves at <c>/mcp</c>. Each acts as the authenticated caller (API key or bearer token, through the
/// same authentication as the REST API) and sees only what that user owns or was shared. knowledge_search needs the
/// <c>knowledge</c> scope, the agent tools <c>agents</c>, as their REST routes do.
/// </summary>
[McpServerToolType]
public static class SutazaiMcpTools
{
    [Authorize(Policy = ScopePolicies.Knowledge)]
    [McpServerTool(Name = "knowledge_search", ReadOnly = true, Idempotent = true, OpenWorld = false)]
    [Description("Hybrid (semantic + keyword) search over your documents and the collections shared with you; returns passages with documentId, title, chunkId, text, score, page and heading.")]
    public static async Task<KnowledgeSearchResult> KnowledgeSearchAsync(
        RequestContext<CallToolRequestParams> context, KnowledgeSearch search,
        [Description("What to look for, in words.")] string query,
        [Description("How many passages to return (default 5, at most 50).")] int? k = null,
        CancellationToken cancellationToken = default)
    {
        if (string.IsNullOrWhiteSpace(query) || query.Length > KnowledgeToolProvider.MaxQueryLength)
            throw new McpException($"Give a query of 1 to {KnowledgeToolProvider.MaxQueryLength} characters.");
        var count = k ?? KnowledgeToolProvider.DefaultK;
        if (count < 1 || count > KnowledgeToolProvider.MaxK) throw new McpException($"k must be between 1 and {KnowledgeToolProvider.MaxK}.");
        var hits = await search.SearchAsync(UserOf(context), query, null, count, "hybrid", cancellationToken);
        return new KnowledgeSearchResult(query, hits.Select(h => new KnowledgeHit(h.DocumentId, h.Title, h.ChunkId, h.Text, h.Score, h.Page, h.Heading, h.SharedBy)).ToList());
    }

    [Authorize(Policy = ScopePolicies.Agents)]
    [McpServerTool(Name = "list_agents", ReadOnly = true, Idempotent = true, OpenWorld = false)]
    [Description("The agents you can start: the built-in ones and your custom agents, with their tool families.")]
    public static async Task<IReadOnlyList<McpAgentSummary>> ListAgentsAsync(
        RequestContext<CallToolRequestParams> context, AppDbContext db, CancellationToken cancellationToken = default)
    {
        var userId = UserOf(context);
        var custom = await db.CustomAgents.AsNoTracking().Where(a => a.OwnerId == userId).OrderBy(a => a.Name).ToListAsync(cancellationToken);
        return AgentCatalog.BuiltIns.Concat(custom.Select(AgentCatalog.FromCustom))
            .Select(a => new McpAgentSummary(a.Id, a.Name, a.Description, a.BuiltIn, a.Tools)).ToList();
    }

    [Authorize(Policy = ScopePolicies.Agents)]
    [McpServerTool(Name = "start_agent_run", Destructive = false, Idempotent = false, OpenWorld = false)]
    [Description("Starts a run of an agent (a durable job) and returns its runId; follow it with get_agent_run. Tools with side effects wait for your approval in SutazAI.")]
    public static async Task<McpRunStarted> StartAgentRunAsync(
        RequestContext<CallToolRequestParams> context, AgentRunService runs,
        [Description("The agent's id (see list_agents), e.g. 'shell' or a custom agent's id.")] string agent,
        [Description("What the agent should do, in plain language.")] string input,
        CancellationToken cancellationToken = default)
    {
        var result = await runs.StartAsync(UserOf(context), agent, new StartRunRequest(input, null, null, null, null), cancellationToken);
        return result switch
        {
            AgentRunService.StartResult.Started started => new McpRunStarted(started.Run.Id, started.Run.Status, started.Run.AgentId),
            AgentRunService.StartResult.Invalid invalid => throw new McpException(string.Join(" ", invalid.Errors.Select(e => $"{e.Key}: {string.Join(" ", e.Value)}"))),
            AgentRunService.StartResult.Forbidden forbidden => throw new McpException(forbidden.Detail),
            _ => throw new McpException($"No agent '{agent}' was found."),
        };
    }

    [Authorize(Policy = ScopePolicies.Agents)]
    [McpServerTool(Name = "get_agent_run", ReadOnly = true, Idempotent = true, OpenWorld = false)]
    [Description("A run of yours: status, steps, pending approvals, output, error, artifacts and usage.")]
    public static async Task<AgentRunView> GetAgentRunAsync(
        RequestContext<CallToolRequestParams> context, AgentRunService runs,
        [Description("The runId start_agent_run returned.")] Guid runId,
        CancellationToken cancellationToken = default) =>
        await runs.ViewAsync(UserOf(context), runId, cancellationToken) ?? throw new McpException($"Run {runId} was not found.");

    private static Guid UserOf(RequestContext<CallToolRequestParams> context) =>
        context.User?.Identity?.IsAuthenticated == true ? context.User.UserId() : throw new McpException("Not authenticated.");
}

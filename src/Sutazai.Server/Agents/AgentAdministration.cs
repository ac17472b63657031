using Sutazai.Agents;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Agents.Tools;

namespace Sutazai.Server.Agents;

public sealed record ToolView(string Family, string Name, string Description, bool SideEffects, bool PreApproved, bool Available);

/// <summary>
/// One approval round. Arguments and Risk: what the user was asked; EditedArguments and EditedRisk: their edit, assessed
/// again; ExecutedArguments: what the approved call ran with (null unless approved). A round whose edit raised the risk
/// is <c>escalated</c>, and the next round (Round + 1) asks about the edited call.
/// </summary>
public sealed record ApprovalAuditRow(
    Guid Id, Guid RunId, string Agent, string User, string Tool, JsonElement Arguments, JsonElement? EditedArguments,
    string Risk, string? EditedRisk, int Round, string Status, JsonElement? ExecutedArguments, DateTime CreatedAt, DateTime? DecidedAt);

/// <summary>The admin's view of agent tools and approvals: one path for the admin API and the admin pages of the UI.</summary>
public sealed class AgentAdministration(AppDbContext db, IEnumerable<IToolProvider> providers, IServiceProvider services, TimeProvider time)
{
    public abstract record SetPolicyResult
    {
        public sealed record Done(string Tool, bool PreApproved) : SetPolicyResult;

        public sealed record NotFound(string Detail) : SetPolicyResult;

        public sealed record Invalid(string Field, string Detail) : SetPolicyResult;
    }

    private IEnumerable<(IToolProvider Provider, AgentTool Tool)> AllTools()
    {
        // As an admin: the admin's list shows (and may pre-approve) the tools of every MCP server, whoever may use it.
        var probe = new ToolContext(Guid.Empty, Guid.Empty, Path.GetTempPath(), services, IsAdmin: true);
        return providers.SelectMany(p => p.Create(probe).Select(t => (p, t)));
    }

    /// <summary>Every agent tool, whether it has side effects and whether it is pre-approved.</summary>
    public async Task<List<ToolView>> ToolsAsync(CancellationToken ct)
    {
        var policies = await db.ToolPolicies.AsNoTracking().ToDictionaryAsync(p => p.Tool, p => p.PreApproved, ct);
        return AllTools().Select(x => new ToolView(x.Provider.Name, x.Tool.Name, x.Tool.Function.Description, x.Tool.SideEffects,
                x.Tool.SideEffects && policies.GetValueOrDefault(x.Tool.Name), x.Provider.Health().Available))
            .OrderBy(t => t.Family).ThenBy(t => t.Name).ToList();
    }

    /// <summary>Pre-approves a tool with side effects (or requires approval again).</summary>
    public async Task<SetPolicyResult> SetPolicyAsync(Guid adminId, string tool, bool? preApproved, CancellationToken ct)
    {
        if (preApproved is not { } value) return new SetPolicyResult.Invalid("preApproved", "preApproved (true or false) is required.");
        var known = AllTools().Select(x => x.Tool).FirstOrDefault(t => t.Name == tool);
        if (known is null) return new SetPolicyResult.NotFound($"No tool '{tool}'.");
        if (!known.SideEffects) return new SetPolicyResult.Invalid("tool", $"'{tool}' has no side effects; it never asks for approval.");
        var now = time.GetUtcNow().UtcDateTime;
        var updated = await db.ToolPolicies.Where(p => p.Tool == tool)
            .ExecuteUpdateAsync(s => s.SetProperty(p => p.PreApproved, value).SetProperty(p => p.UpdatedBy, adminId).SetProperty(p => p.UpdatedAt, now), ct);
        if (updated == 0)
        {
            db.ToolPolicies.Add(new ToolPolicy { Tool = tool, PreApproved = value, UpdatedBy = adminId, UpdatedAt = now });
            await db.SaveChangesAsync(ct);
        }
        return new SetPolicyResult.Done(tool, value);
    }

    /// <summary>Every approval request and its decision, newest first.</summary>
    public async Task<List<ApprovalAuditRow>> ApprovalAuditAsync(int limit, CancellationToken ct)
    {
        var rows = await (from a in db.AgentApprovals.AsNoTracking()
                          join r in db.AgentRuns.AsNoTracking() on a.RunId equals r.Id
                          join u in db.Users.AsNoTracking() on a.UserId equals u.Id
                          orderby a.CreatedAt descending, a.Round descending
                          select new { a.Id, a.RunId, agent = r.AgentId, user = u.UserName, a.Tool, a.Arguments, a.EditedArguments, a.Risk, a.EditedRisk, a.Round, a.Status, a.CreatedAt, a.DecidedAt })
            .Take(Math.Clamp(limit, 1, 1000)).ToListAsync(ct);
        static JsonElement Parse(string json) => JsonDocument.Parse(json).RootElement.Clone();
        return rows.Select(r => new ApprovalAuditRow(r.Id, r.RunId, r.agent, r.user ?? "", r.Tool, Parse(r.Arguments),
            r.EditedArguments is null ? null : Parse(r.EditedArguments), r.Risk, r.EditedRisk, r.Round, r.Status,
            r.Status == ApprovalStatus.Approved ? Parse(r.EditedArguments ?? r.Arguments) : null, r.CreatedAt, r.DecidedAt)).ToList();
    }
}

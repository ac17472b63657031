using Microsoft.Extensions.Options;
using Sutazai.Data.Entities;

namespace Sutazai.Agents;

/// <summary>
/// Who may use what in agent runs: the tool families a role may use (<c>Sutazai:Agents:ToolFamiliesByRole:*</c>) and the
/// coder repositories a user may open (<c>Sutazai:Agents:CoderRepositories</c>). One place for a run's start
/// (<see cref="AgentRunService"/>) and its execution (<see cref="AgentRunner"/>), so a setting tightened while a run
/// waits for an approval holds when the run goes on.
/// </summary>
public sealed class AgentAccess(IOptions<AgentOptions> options)
{
    public const string EveryFamily = "*";

    /// <summary>The configuration key that lists the families of a non-admin role.</summary>
    public static string FamiliesSetting(string role) =>
        $"{AgentOptions.Section}:ToolFamiliesByRole:{char.ToUpperInvariant(role[0])}{role[1..]}";

    /// <summary>The first of <paramref name="families"/> that <paramref name="role"/> may not use, or null when it may use them all.</summary>
    public string? ForbiddenFamily(string role, IEnumerable<string> families)
    {
        if (role == Roles.Admin) return null;
        var allowed = ParseFamilies(options.Value.ToolFamiliesByRole.User);
        return allowed.Contains(EveryFamily) ? null : families.FirstOrDefault(f => !allowed.Contains(f));
    }

    public static IReadOnlySet<string> ParseFamilies(string setting) =>
        setting.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>The tool families a run of <paramref name="agent"/> uses: the agent's own, or for a crew its members'.</summary>
    public static IReadOnlyList<string> FamiliesOf(AgentDefinition agent, string? runOptions) =>
        agent.Kind == AgentKind.Crew
            ? (CrewSpec.Parse(runOptions)?.Members.SelectMany(m => m.Tools) ?? []).Distinct(StringComparer.OrdinalIgnoreCase).ToList()
            : agent.Tools;

    /// <summary>Whether the allowlist names <paramref name="path"/> (an absolute path) for this user.</summary>
    public bool MayUseRepository(string path, string userName, string role)
    {
        var full = CoderRepository.Normalize(path);
        return options.Value.AllowedRepositories.Any(r => r.Path == full && r.Allows(userName, role == Roles.Admin));
    }
}

using System.ComponentModel.DataAnnotations;

namespace Sutazai.Agents;

public sealed class AgentOptions
{
    public const string Section = "Sutazai:Agents";

    /// <summary>How long a worker's claim on a run lasts without renewal; a crashed worker's run is taken over after it.</summary>
    [Range(5, 3600)]
    public int LeaseSeconds { get; set; }

    /// <summary>Providers whose models get the documented JSON tool-call format instead of native tool calls.</summary>
    public string JsonToolCallProviders { get; set; } = "";

    /// <summary>
    /// Git repositories the coder agent may work in, and who may use each: entries separated by <c>;</c>, each an
    /// absolute path (admins only), <c>path|alice,bob</c> (admins and those users) or <c>path|*</c> (everyone).
    /// </summary>
    public string CoderRepositories { get; set; } = "";

    [Range(1, 1_000_000)]
    public int MaxInputChars { get; set; }

    /// <summary>How often the engineer agent runs the build command its plan names before the run fails.</summary>
    [Range(1, 20)]
    public int EngineerMaxBuildAttempts { get; set; }

    /// <summary>The tool families each non-admin role may use (admins may use every family).</summary>
    public ToolFamiliesByRoleOptions ToolFamiliesByRole { get; set; } = new();

    public IReadOnlySet<string> JsonProviders => JsonToolCallProviders
        .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>The parsed <see cref="CoderRepositories"/>; <see cref="CoderRepository.Problems"/> says what is wrong with it.</summary>
    public IReadOnlyList<CoderRepository> AllowedRepositories => CoderRepository.ParseAll(CoderRepositories);
}

/// <summary><c>Sutazai:Agents:ToolFamiliesByRole:*</c>: comma-separated tool families, or <c>*</c> for every family.</summary>
public sealed class ToolFamiliesByRoleOptions
{
    public string User { get; set; } = "";
}

/// <summary>One repository of <see cref="AgentOptions.CoderRepositories"/>: its full path and who besides admins may use it.</summary>
public sealed record CoderRepository(string Path, bool Everyone, IReadOnlySet<string> Users)
{
    public bool Allows(string userName, bool isAdmin) => isAdmin || Everyone || Users.Contains(userName);

    public static IReadOnlyList<CoderRepository> ParseAll(string setting) =>
        setting.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Parse).ToList();

    private static CoderRepository Parse(string entry)
    {
        var bar = entry.IndexOf('|', StringComparison.Ordinal);
        var path = (bar < 0 ? entry : entry[..bar]).Trim();
        var users = bar < 0 ? [] : entry[(bar + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return new CoderRepository(
            System.IO.Path.IsPathFullyQualified(path) ? Normalize(path) : path,
            users.Contains("*"),
            users.Where(u => u != "*").ToHashSet(StringComparer.OrdinalIgnoreCase));
    }

    /// <summary>The full path without a trailing separator, as entries and requested paths are compared.</summary>
    public static string Normalize(string path) => System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(path));

    /// <summary>What is wrong with the setting, for the start-up check; empty when it is fine.</summary>
    public static IEnumerable<string> Problems(string setting)
    {
        foreach (var entry in setting.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var path = entry.Split('|')[0].Trim();
            if (path.Contains(',', StringComparison.Ordinal))
                yield return $"'{path}': separate repositories with ';' (users of one repository with ',' after '|').";
            else if (!System.IO.Path.IsPathFullyQualified(path)) yield return $"'{path}' is not an absolute path.";
            if (entry.Count(c => c == '|') > 1) yield return $"'{entry}' has more than one '|'.";
        }
    }
}

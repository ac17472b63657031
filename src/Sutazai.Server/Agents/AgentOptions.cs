using System.ComponentModel.DataAnnotations;

namespace Sutazai.Server.Agents;

public sealed class AgentOptions
{
    public const string Section = "Sutazai:Agents";

    /// <summary>How long a worker's claim on a run lasts without renewal; a crashed worker's run is taken over after it.</summary>
    [Range(5, 3600)]
    public int LeaseSeconds { get; set; }

    /// <summary>Providers whose models get the documented JSON tool-call format instead of native tool calls.</summary>
    public string JsonToolCallProviders { get; set; } = "";

    /// <summary>Absolute paths of git repositories the coder agent may work in.</summary>
    public string CoderRepositories { get; set; } = "";

    [Range(1, 1_000_000)]
    public int MaxInputChars { get; set; }

    public IReadOnlySet<string> JsonProviders => JsonToolCallProviders
        .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.OrdinalIgnoreCase);

    public IReadOnlyList<string> AllowedRepositories => CoderRepositories
        .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Path.GetFullPath).ToList();
}

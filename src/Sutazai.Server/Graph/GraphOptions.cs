namespace Sutazai.Server.Graph;

public sealed class GraphOptions
{
    public const string Section = "Sutazai:Knowledge:Graph";

    /// <summary>Extract entities and relations while ingesting documents.</summary>
    public bool Enabled { get; set; }

    /// <summary>Also ask a chat model for entities and relations (JSON), merged with the deterministic extraction.</summary>
    public bool UseModel { get; set; }

    /// <summary>The model for <see cref="UseModel"/>; empty uses the default model.</summary>
    public string Model { get; set; } = "";

    /// <summary>Graph facts about entities named in a question added to a grounded prompt (0: none).</summary>
    public int MaxFacts { get; set; }
}

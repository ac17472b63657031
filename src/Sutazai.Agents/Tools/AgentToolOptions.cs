namespace Sutazai.Agents.Tools;

/// <summary>Limits of the built-in agent tools (<c>Sutazai:Agents:Tools:*</c>).</summary>
public sealed class AgentToolOptions
{
    public const string Section = "Sutazai:Agents:Tools";

    /// <summary>Seconds a shell command may run when the model gives no timeout.</summary>
    public int ShellTimeoutSeconds { get; set; }

    /// <summary>Largest timeout a model may ask for.</summary>
    public int ShellMaxTimeoutSeconds { get; set; }

    /// <summary>Bytes kept of each of stdout and stderr (and of a git diff); the rest is dropped and flagged.</summary>
    public int OutputCapBytes { get; set; }

    /// <summary>Largest <c>maxBytes</c> files_read accepts.</summary>
    public int FileReadMaxBytes { get; set; }

    /// <summary>Largest content files_write accepts, in UTF-8 bytes.</summary>
    public int FileWriteMaxBytes { get; set; }

    /// <summary>Entries files_list returns at most.</summary>
    public int FileListMaxEntries { get; set; }

    /// <summary>Characters of page text web_fetch returns when the model gives no maxChars.</summary>
    public int WebFetchDefaultChars { get; set; }

    /// <summary>Largest maxChars web_fetch accepts.</summary>
    public int WebFetchMaxChars { get; set; }

    /// <summary>Largest response body web_fetch downloads.</summary>
    public long WebFetchMaxBytes { get; set; }

    /// <summary>Seconds web_fetch waits for the whole response.</summary>
    public int WebFetchTimeoutSeconds { get; set; }
}

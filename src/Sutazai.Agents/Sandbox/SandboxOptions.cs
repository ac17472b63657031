namespace Sutazai.Agents.Sandbox;

/// <summary>The OS sandbox every process-running agent tool goes through (<c>Sutazai:Agents:Sandbox:*</c>).</summary>
public sealed class SandboxOptions
{
    public const string Section = "Sutazai:Agents:Sandbox";

    /// <summary><c>bubblewrap</c> (the default) or <c>none</c> (unsafe: commands run as the server's user).</summary>
    public string Mode { get; set; } = "bubblewrap";

    public string BwrapPath { get; set; } = "/usr/bin/bwrap";

    public string PrlimitPath { get; set; } = "/usr/bin/prlimit";

    /// <summary>Comma-separated agent ids or tool families whose commands get network; empty = none, <c>*</c> = all.</summary>
    public string Network { get; set; } = "";

    public string Slirp4netnsPath { get; set; } = "/usr/bin/slirp4netns";

    public string NsenterPath { get; set; } = "/usr/bin/nsenter";

    public string NftPath { get; set; } = "/usr/sbin/nft";

    public string UnsharePath { get; set; } = "/usr/bin/unshare";

    public string IpPath { get; set; } = "/usr/sbin/ip";

    /// <summary>With network: whether 10.0.2.2 reaches the host's loopback (off: refused).</summary>
    public bool NetworkAllowHostLoopback { get; set; }

    /// <summary>With network: comma-separated private CIDRs the sandbox may still reach.</summary>
    public string NetworkAllowedPrivateRanges { get; set; } = "";

    public int CpuSeconds { get; set; } = 120;

    public long MemoryBytes { get; set; } = 4L * 1024 * 1024 * 1024;

    public int MaxProcesses { get; set; } = 256;

    public long MaxFileBytes { get; set; } = 1024L * 1024 * 1024;

    public long TmpBytes { get; set; } = 256L * 1024 * 1024;

    public long WorkspaceQuotaBytes { get; set; } = 2L * 1024 * 1024 * 1024;

    public long UserQuotaBytes { get; set; } = 10L * 1024 * 1024 * 1024;

    public bool IsUnsandboxed => string.Equals(Mode, "none", StringComparison.OrdinalIgnoreCase);

    public bool NetworkAllowed(string? agentId, string family)
    {
        foreach (var entry in Network.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (entry == "*" || string.Equals(entry, family, StringComparison.OrdinalIgnoreCase)
                || (agentId is not null && string.Equals(entry, agentId, StringComparison.OrdinalIgnoreCase)))
                return true;
        }
        return false;
    }
}

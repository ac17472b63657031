using Sutazai.Agents.Sandbox;

namespace Sutazai.Agents.Tools;

public static class ToolsSetup
{
    /// <summary>Registers the built-in tool families as <see cref="IToolProvider"/>s with their validated limits.</summary>
    public static WebApplicationBuilder AddAgentTools(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<AgentToolOptions>().BindConfiguration(AgentToolOptions.Section)
            .Validate(o => o.ShellMaxTimeoutSeconds is >= 1 and <= 86_400, "Sutazai:Agents:Tools:ShellMaxTimeoutSeconds must be between 1 and 86400.")
            .Validate(o => o.ShellTimeoutSeconds >= 1 && o.ShellTimeoutSeconds <= o.ShellMaxTimeoutSeconds, "Sutazai:Agents:Tools:ShellTimeoutSeconds must be between 1 and ShellMaxTimeoutSeconds.")
            .Validate(o => o.OutputCapBytes is >= 1024 and <= 64 * 1024 * 1024, "Sutazai:Agents:Tools:OutputCapBytes must be between 1024 and 67108864.")
            .Validate(o => o.FileReadMaxBytes is >= 1024 and <= 256 * 1024 * 1024, "Sutazai:Agents:Tools:FileReadMaxBytes must be between 1024 and 268435456.")
            .Validate(o => o.FileWriteMaxBytes is >= 1024 and <= 1024 * 1024 * 1024, "Sutazai:Agents:Tools:FileWriteMaxBytes must be between 1024 and 1073741824.")
            .Validate(o => o.FileListMaxEntries is >= 1 and <= 100_000, "Sutazai:Agents:Tools:FileListMaxEntries must be between 1 and 100000.")
            .Validate(o => o.WebFetchMaxChars is >= 100 and <= 10_000_000, "Sutazai:Agents:Tools:WebFetchMaxChars must be between 100 and 10000000.")
            .Validate(o => o.WebFetchDefaultChars >= 100 && o.WebFetchDefaultChars <= o.WebFetchMaxChars, "Sutazai:Agents:Tools:WebFetchDefaultChars must be between 100 and WebFetchMaxChars.")
            .Validate(o => o.WebFetchMaxBytes is >= 1024 and <= 1024L * 1024 * 1024, "Sutazai:Agents:Tools:WebFetchMaxBytes must be between 1024 and 1073741824.")
            .Validate(o => o.WebFetchTimeoutSeconds is >= 1 and <= 600, "Sutazai:Agents:Tools:WebFetchTimeoutSeconds must be between 1 and 600.")
            .ValidateOnStart();
        services.AddOptions<SandboxOptions>().BindConfiguration(SandboxOptions.Section)
            .Validate(o => o.Mode is "bubblewrap" or "none", "Sutazai:Agents:Sandbox:Mode must be `bubblewrap` or `none`.")
            .Validate(o => o.CpuSeconds is >= 1 and <= 86_400, "Sutazai:Agents:Sandbox:CpuSeconds must be between 1 and 86400.")
            .Validate(o => o.MemoryBytes >= 16L * 1024 * 1024, "Sutazai:Agents:Sandbox:MemoryBytes must be at least 16777216.")
            .Validate(o => o.MaxProcesses is >= 8 and <= 100_000, "Sutazai:Agents:Sandbox:MaxProcesses must be between 8 and 100000.")
            .Validate(o => o.MaxFileBytes >= 4096, "Sutazai:Agents:Sandbox:MaxFileBytes must be at least 4096.")
            .Validate(o => o.TmpBytes >= 1024 * 1024, "Sutazai:Agents:Sandbox:TmpBytes must be at least 1048576.")
            .Validate(o => o.WorkspaceQuotaBytes >= 1024 * 1024 && o.UserQuotaBytes >= o.WorkspaceQuotaBytes,
                "Sutazai:Agents:Sandbox:WorkspaceQuotaBytes must be at least 1048576 and UserQuotaBytes at least WorkspaceQuotaBytes.")
            .Validate(o => o.NetworkAllowedPrivateRanges.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).All(r => System.Net.IPNetwork.TryParse(r, out _)),
                "Sutazai:Agents:Sandbox:NetworkAllowedPrivateRanges must be comma-separated CIDRs.")
            .ValidateOnStart();
        services.AddSingleton<ProcessSandbox>();
        services.AddHealthChecks().AddCheck<SandboxHealthCheck>("sandbox", tags: ["ready"]);
        services.AddSingleton<IToolProvider, ShellToolProvider>();
        services.AddSingleton<IToolProvider, FilesToolProvider>();
        services.AddSingleton<IToolProvider, GitToolProvider>();
        services.AddSingleton<IToolProvider, WebToolProvider>();
        services.AddSingleton<IToolProvider, CalculatorToolProvider>();
        services.AddSingleton<IToolProvider, KnowledgeToolProvider>();
        return builder;
    }
}

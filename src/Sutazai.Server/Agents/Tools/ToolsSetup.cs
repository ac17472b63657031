namespace Sutazai.Server.Agents.Tools;

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
        services.AddSingleton<IToolProvider, ShellToolProvider>();
        services.AddSingleton<IToolProvider, FilesToolProvider>();
        services.AddSingleton<IToolProvider, GitToolProvider>();
        services.AddSingleton<IToolProvider, WebToolProvider>();
        services.AddSingleton<IToolProvider, CalculatorToolProvider>();
        services.AddSingleton<IToolProvider, KnowledgeToolProvider>();
        return builder;
    }
}

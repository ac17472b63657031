using Sutazai.Knowledge.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Sutazai.Agents;
using Sutazai.Agents.Tools;
using Sutazai.Server.Configuration;

namespace Sutazai.Server.Tests.Agents.Tools;

public sealed class ToolsSetupTests : IDisposable
{
    private readonly string _dataDir = Directory.CreateTempSubdirectory("sutazai-tools-setup-").FullName;

    public void Dispose() => Directory.Delete(_dataDir, recursive: true);

    private WebApplication Build(Dictionary<string, string?>? settings = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        SettingsRegistry.AddDefaults(builder.Configuration);
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Sutazai:DataDir"] = _dataDir });
        builder.Configuration.AddInMemoryCollection(settings ?? []);
        // What the host registers elsewhere and the tools need: the data dir (the sandbox keeps its /etc files there).
        builder.Services.AddSingleton(new AgentDataDir(_dataDir));
        builder.Services.AddSingleton(new SsrfGuard([]));
        builder.Services.AddSingleton(TimeProvider.System);
        builder.AddAgentTools();
        return builder.Build();
    }

    [Fact]
    public async Task AddAgentTools_RegistersEveryFamily_WithTheRegistryDefaults()
    {
        await using var app = Build();
        var providers = app.Services.GetServices<IToolProvider>().ToList();
        Assert.Equal(["shell", "files", "git", "web", "calculator", "knowledge"], providers.Select(p => p.Name));
        Assert.All(providers, p => Assert.Equal((true, (string?)null), p.Health()));
        Assert.All(providers, p => Assert.False(string.IsNullOrWhiteSpace(p.Description)));
        var options = app.Services.GetRequiredService<IOptions<AgentToolOptions>>().Value;
        Assert.Equal((30, 300, 65536), (options.ShellTimeoutSeconds, options.ShellMaxTimeoutSeconds, options.OutputCapBytes));

        var context = new ToolContext(Guid.NewGuid(), Guid.NewGuid(), "/tmp/unused", app.Services);
        var names = providers.SelectMany(p => p.Create(context)).Select(t => t.Name).ToList();
        Assert.Equal(["shell_run", "files_list", "files_read", "files_write", "files_edit", "files_delete", "git_init", "git_status", "git_diff", "git_log", "git_commit",
            "web_fetch", "calculator_evaluate", "knowledge_search"], names);
        Assert.All(names, n => Assert.Matches("^[a-z]+(_[a-z0-9]+)+$", n));
    }

    [Theory]
    [InlineData("Sutazai:Agents:Tools:ShellTimeoutSeconds", "0", "ShellTimeoutSeconds must be between 1 and ShellMaxTimeoutSeconds")]
    [InlineData("Sutazai:Agents:Tools:ShellTimeoutSeconds", "301", "ShellTimeoutSeconds must be between 1 and ShellMaxTimeoutSeconds")]
    [InlineData("Sutazai:Agents:Tools:OutputCapBytes", "10", "OutputCapBytes must be between 1024 and 67108864")]
    [InlineData("Sutazai:Agents:Tools:WebFetchDefaultChars", "300000", "WebFetchDefaultChars must be between 100 and WebFetchMaxChars")]
    public async Task BadSettings_FailValidation_NamingTheSetting(string key, string value, string message)
    {
        await using var app = Build(new Dictionary<string, string?> { [key] = value });
        var error = Assert.Throws<OptionsValidationException>(() => app.Services.GetRequiredService<IOptions<AgentToolOptions>>().Value);
        Assert.Contains(message, error.Message);
    }
}

using System.Text.Json;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Sutazai.Server.Agents.Tools;

namespace Sutazai.Server.Tests.Agents.Tools;

/// <summary>A temporary workspace with a sibling "outside" folder holding a sentinel file that escapes must not reach.</summary>
public sealed class TempWorkspace : IDisposable
{
    public TempWorkspace()
    {
        Base = Directory.CreateTempSubdirectory("sutazai-tools-").FullName;
        Root = Path.Join(Base, "ws");
        Outside = Path.Join(Base, "outside");
        Directory.CreateDirectory(Root);
        Directory.CreateDirectory(Outside);
        File.WriteAllText(Sentinel, "outside secret\n");
    }

    public string Base { get; }

    public string Root { get; }

    public string Outside { get; }

    public string Sentinel => Path.Join(Outside, "secret.txt");

    public string At(string relative) => Path.Join(Root, relative);

    /// <summary>Everything under the outside folder, as relative path → content, to prove escapes changed nothing.</summary>
    public Dictionary<string, string> OutsideSnapshot() =>
        Directory.EnumerateFileSystemEntries(Outside, "*", SearchOption.AllDirectories)
            .ToDictionary(p => Path.GetRelativePath(Outside, p), p => File.Exists(p) ? File.ReadAllText(p) : "<dir>");

    public void Dispose() => Directory.Delete(Base, recursive: true);
}

public static class ToolHarness
{
    private static readonly JsonSerializerOptions Web = new(JsonSerializerDefaults.Web);

    public static AgentToolOptions Options(Action<AgentToolOptions>? change = null)
    {
        var options = new AgentToolOptions
        {
            ShellTimeoutSeconds = 30, ShellMaxTimeoutSeconds = 300, OutputCapBytes = 65536, FileReadMaxBytes = 1048576,
            FileWriteMaxBytes = 10485760, FileListMaxEntries = 1000, WebFetchDefaultChars = 20000, WebFetchMaxChars = 200000,
            WebFetchMaxBytes = 10485760, WebFetchTimeoutSeconds = 30,
        };
        change?.Invoke(options);
        return options;
    }

    public static IOptions<AgentToolOptions> Wrap(AgentToolOptions options) => Microsoft.Extensions.Options.Options.Create(options);

    public static ToolContext Context(string workspace, IServiceProvider? services = null, Guid? userId = null) =>
        new(Guid.NewGuid(), userId ?? Guid.NewGuid(), workspace, services ?? new ServiceCollection().BuildServiceProvider());

    public static AgentTool Tool(IToolProvider provider, ToolContext context, string name) =>
        Assert.Single(provider.Create(context), t => t.Name == name);

    public static AIFunctionArguments Arguments(object? arguments) =>
        new(arguments is null
            ? new Dictionary<string, object?>()
            : arguments.GetType().GetProperties().ToDictionary(p => p.Name, p => p.GetValue(arguments)));

    /// <summary>Invokes the tool's AIFunction as the runtime does and reads its JSON result.</summary>
    public static async Task<T> InvokeAsync<T>(AgentTool tool, object? arguments = null, CancellationToken ct = default)
    {
        var result = await tool.Function.InvokeAsync(Arguments(arguments), ct);
        var json = result is JsonElement element ? element : JsonSerializer.SerializeToElement(result, AIJsonUtilities.DefaultOptions);
        return json.Deserialize<T>(Web)!;
    }

    public static async Task<ToolException> FailsAsync(AgentTool tool, object? arguments = null) =>
        await Assert.ThrowsAsync<ToolException>(async () => await tool.Function.InvokeAsync(Arguments(arguments)));
}

using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Logging.Abstractions;
using Sutazai.Agents.Sandbox;
using Sutazai.Agents.Tools;
using Sutazai.Agents;
using Sutazai.Server.Configuration;

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

    /// <summary>The real bubblewrap sandbox with its defaults, changed as the test needs; its /etc files go to <paramref name="dataDir"/>.</summary>
    public static ProcessSandbox Sandbox(string dataDir, Action<SandboxOptions>? change = null)
    {
        var options = new SandboxOptions();
        change?.Invoke(options);
        return new ProcessSandbox(Microsoft.Extensions.Options.Options.Create(options),
            new AgentDataDir(Path.GetFullPath(dataDir)), NullLogger<ProcessSandbox>.Instance);
    }

    public static ShellToolProvider ShellProvider(string dataDir, Action<AgentToolOptions>? tools = null, Action<SandboxOptions>? sandbox = null) =>
        new(Wrap(Options(tools)), Sandbox(dataDir, sandbox));

    public static ToolContext Context(string workspace, IServiceProvider? services = null, Guid? userId = null, string? agentId = null) =>
        new(Guid.NewGuid(), userId ?? Guid.NewGuid(), workspace, services ?? new ServiceCollection().BuildServiceProvider(), AgentId: agentId);

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

/// <summary>The host's view of processes a sandboxed command started (pids inside the sandbox mean nothing out here).</summary>
public static class HostProcesses
{
    /// <summary>Host processes whose command line is exactly the marker: pids inside the sandbox mean nothing out here.</summary>
    public static List<int> HostProcessesRunning(string marker)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            try
            {
                var cmdline = File.ReadAllText(Path.Join(dir, "cmdline")).Replace('\0', ' ').Trim();
                var stat = File.ReadAllText(Path.Join(dir, "stat"));
                var state = stat[(stat.LastIndexOf(')') + 2)..][0];
                if (cmdline == marker && state is not ('Z' or 'X')) found.Add(pid);
            }
            catch (IOException)
            {
                // It exited while we looked.
            }
        }
        return found;
    }

    public static async Task AssertGoneAsync(params string[] markers)
    {
        var deadline = Stopwatch.StartNew();
        while (markers.Any(m => HostProcessesRunning(m).Count > 0) && deadline.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(50);
        Assert.All(markers, m => Assert.Empty(HostProcessesRunning(m)));
    }

}

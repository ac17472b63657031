using System.Diagnostics;
using System.Globalization;
using Sutazai.Agents.Tools;
using static Sutazai.Server.Tests.Agents.Tools.HostProcesses;
using static Sutazai.Server.Tests.Agents.Tools.ToolHarness;

namespace Sutazai.Server.Tests.Agents.Tools;

public sealed class ShellToolTests : IDisposable
{
    private readonly TempWorkspace _ws = new();

    public void Dispose() => _ws.Dispose();

    private AgentTool Shell(Action<AgentToolOptions>? change = null, string? workspace = null) =>
        Tool(ShellProvider(_ws.Base, change), Context(workspace ?? _ws.Root), "shell_run");

    /// <summary>A sleep long enough to outlive any test, told apart from every other process by its duration.</summary>
    private static string Marker() => "sleep " + Random.Shared.Next(1_000_000, 9_000_000).ToString(CultureInfo.InvariantCulture);

    [Fact]
    public void Provider_IsHealthyHere_AndShellRunNeedsApproval()
    {
        var provider = ShellProvider(_ws.Base);
        Assert.Equal((true, (string?)null), provider.Health());
        var tool = Shell();
        Assert.True(tool.SideEffects);
        var schema = tool.Function.JsonSchema.GetRawText();
        Assert.Contains("\"command\"", schema);
        Assert.Contains("\"timeoutSeconds\"", schema);
        Assert.Equal(["command"], tool.Function.JsonSchema.GetProperty("required").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public async Task Run_ReturnsExitCodeStdoutAndStderr()
    {
        var result = await InvokeAsync<ShellResult>(Shell(), new { command = "echo out; echo err >&2; exit 3" });
        Assert.Equal(3, result.ExitCode);
        Assert.Equal("out\n", result.Stdout);
        Assert.Equal("err\n", result.Stderr);
        Assert.False(result.TimedOut);
        Assert.False(result.Truncated);
        Assert.InRange(result.DurationMs, 0, 10_000);
    }

    [Fact]
    public async Task Run_WorksInTheWorkspace_CreatingItWhenMissing()
    {
        var fresh = Path.Join(_ws.Base, "new", "run");
        var result = await InvokeAsync<ShellResult>(Shell(workspace: fresh), new { command = "pwd; echo made > made.txt" });
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("/workspace\n", result.Stdout);
        Assert.Equal("made\n", File.ReadAllText(Path.Join(fresh, "made.txt")));
    }

    [Fact]
    public async Task Run_SeesOnlyTheClearedEnvironment_NotTheServersSecrets()
    {
        Environment.SetEnvironmentVariable("SUTAZAI_TOOLS_TEST_SECRET", "hunter2-very-secret");
        try
        {
            var result = await InvokeAsync<ShellResult>(Shell(), new { command = "env" });
            Assert.Equal(0, result.ExitCode);
            Assert.DoesNotContain("hunter2-very-secret", result.Stdout);
            Assert.DoesNotContain("SUTAZAI_TOOLS_TEST_SECRET", result.Stdout);
            var variables = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).ToDictionary(l => l[..l.IndexOf('=')], l => l[(l.IndexOf('=') + 1)..]);
            Assert.Equal("/usr/local/bin:/usr/bin:/bin", variables["PATH"]);
            Assert.Equal("/workspace", variables["HOME"]);
            Assert.Equal("C.UTF-8", variables["LANG"]);
            Assert.Equal("/tmp", variables["TMPDIR"]);
            // Only what we set, plus what sh itself exports (PWD; OLDPWD/SHLVL/_ on some shells).
            Assert.Empty(variables.Keys.Except(["PATH", "HOME", "LANG", "TMPDIR", "PWD", "OLDPWD", "SHLVL", "_"]));
        }
        finally
        {
            Environment.SetEnvironmentVariable("SUTAZAI_TOOLS_TEST_SECRET", null);
        }
    }

    [Fact]
    public async Task Run_Timeout_KillsTheWholeProcessTree()
    {
        string a = Marker(), b = Marker(), c = Marker();
        var result = await InvokeAsync<ShellResult>(Shell(), new
        {
            command = $"{a} & {b} & sh -c '{c} & wait' & echo started > started; wait",
            timeoutSeconds = 1,
        });
        Assert.True(result.TimedOut);
        Assert.True(File.Exists(_ws.At("started")));
        Assert.InRange(result.DurationMs, 900, 8_000);
        await AssertGoneAsync(a, b, c);
    }

    [Fact]
    public async Task Run_BackgroundJobsLeftBehind_AreKilledWhenTheCommandEnds()
    {
        string a = Marker(), b = Marker(), c = Marker();
        // A plain background job, a job in its own session and a double fork: none outlives the command.
        var result = await InvokeAsync<ShellResult>(Shell(), new { command = $"{a} & setsid sh -c '{b} &'; (sh -c '{c} &' &); echo started" });
        Assert.Equal(0, result.ExitCode);
        Assert.False(result.TimedOut);
        Assert.Equal("started\n", result.Stdout);
        Assert.InRange(result.DurationMs, 0, 5_000);
        await AssertGoneAsync(a, b, c);
    }

    [Fact]
    public async Task Run_Cancelled_KillsTheWholeProcessTree()
    {
        using var cts = new CancellationTokenSource();
        var tool = Shell();
        string a = Marker(), b = Marker();
        var watch = Stopwatch.StartNew();
        var run = tool.Function.InvokeAsync(Arguments(new { command = $"{a} & {b} & echo started > started; wait" }), cts.Token).AsTask();
        while (!File.Exists(_ws.At("started")) || HostProcessesRunning(b).Count == 0)
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), "the command never started");
            await Task.Delay(50);
        }
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        await AssertGoneAsync(a, b);
    }

    [Fact]
    public async Task Run_CapsEachOutput_AndDrainsTheRest()
    {
        var result = await InvokeAsync<ShellResult>(Shell(o => o.OutputCapBytes = 1024), new
        {
            command = "head -c 300000 /dev/zero | tr '\\000' a; head -c 5000 /dev/zero | tr '\\000' e >&2; echo done > done.txt",
        });
        Assert.Equal(0, result.ExitCode);
        Assert.True(result.Truncated);
        Assert.Equal(new string('a', 1024), result.Stdout);
        Assert.Equal(new string('e', 1024), result.Stderr);
        Assert.Equal("done\n", File.ReadAllText(_ws.At("done.txt")));
    }

    [Fact]
    public async Task Run_CapDoesNotSplitACharacter()
    {
        // "é" is two bytes; a 1025-byte cap would cut the 513th in half, so only 512 whole ones come back.
        var result = await InvokeAsync<ShellResult>(Shell(o => o.OutputCapBytes = 1025), new { command = "i=0; while [ $i -lt 600 ]; do printf 'é'; i=$((i+1)); done" });
        Assert.True(result.Truncated);
        Assert.Equal(new string('é', 512), result.Stdout);
    }

    [Fact]
    public async Task Run_HasNoStandardInput()
    {
        var result = await InvokeAsync<ShellResult>(Shell(), new { command = "cat; echo after", timeoutSeconds = 5 });
        Assert.False(result.TimedOut);
        Assert.Equal("after\n", result.Stdout);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(301)]
    public async Task Run_TimeoutOutsideTheLimits_IsRefused(int seconds)
    {
        var error = await FailsAsync(Shell(), new { command = "echo hi", timeoutSeconds = seconds });
        Assert.Equal("timeoutSeconds must be between 1 and 300.", error.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    public async Task Run_EmptyCommand_IsRefused(string command)
    {
        var error = await FailsAsync(Shell(), new { command });
        Assert.Equal("Give a command to run.", error.Message);
    }

    [Fact]
    public void AssessRisk_ReadsTheCommandArgument()
    {
        var tool = Shell();
        Assert.Equal(ToolRisk.Low, tool.AssessRisk(Arguments(new { command = "ls -la" })));
        Assert.Equal(ToolRisk.Medium, tool.AssessRisk(Arguments(new { command = "touch x" })));
        Assert.Equal(ToolRisk.High, tool.AssessRisk(Arguments(new { command = "rm -rf /" })));
        var json = System.Text.Json.JsonDocument.Parse("{\"command\":\"sudo reboot\"}").RootElement;
        Assert.Equal(ToolRisk.High, tool.AssessRisk(new Microsoft.Extensions.AI.AIFunctionArguments { ["command"] = json.GetProperty("command") }));
    }
}

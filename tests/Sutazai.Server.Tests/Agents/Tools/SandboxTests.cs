using System.Net;
using System.Net.Sockets;
using System.Text;
using Sutazai.Agents.Sandbox;
using Sutazai.Agents.Tools;
using static Sutazai.Server.Tests.Agents.Tools.ToolHarness;

namespace Sutazai.Server.Tests.Agents.Tools;

/// <summary>
/// The real bubblewrap sandbox (scripts/test.sh installs it): what a command can see and reach, and the kernel
/// limits that stop it — each asserted on the exact result the model gets.
/// </summary>
public sealed class SandboxTests : IDisposable
{
    private readonly TempWorkspace _ws = new();

    public void Dispose() => _ws.Dispose();

    private Task<ShellResult> RunAsync(string command, Action<SandboxOptions>? sandbox = null, string? agentId = null, int timeoutSeconds = 60) =>
        InvokeAsync<ShellResult>(Tool(ShellProvider(_ws.Base, sandbox: sandbox), Context(_ws.Root, agentId: agentId), "shell_run"),
            new { command, timeoutSeconds });

    [Fact]
    public async Task Command_RunsAsAnUnprivilegedUser_InTheWorkspace_WhichItCanWrite()
    {
        var result = await RunAsync("id -u; id -g; pwd; echo written > note.txt; ls -A /");
        Assert.Equal(0, result.ExitCode);
        var lines = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["65534", "65534", "/workspace"], lines[..3]);
        Assert.Equal(["bin", "dev", "etc", "lib", "lib64", "proc", "tmp", "usr", "workspace"], lines[3..].Where(l => l != "sbin" && l != "lib32" && l != "libx32").Order(StringComparer.Ordinal));
        Assert.Equal("written\n", await File.ReadAllTextAsync(_ws.At("note.txt")));
    }

    [Fact]
    public async Task HostFiles_DataDirAndOtherWorkspaces_AreInvisible()
    {
        var keys = Directory.CreateDirectory(Path.Join(_ws.Base, "keys")).FullName;
        await File.WriteAllTextAsync(Path.Join(keys, "jwt-signing.key"), "signing-key-material");
        await File.WriteAllTextAsync(Path.Join(_ws.Base, "sutazai.db"), "database");
        var probes = new[] { _ws.Sentinel, Path.Join(keys, "jwt-signing.key"), Path.Join(_ws.Base, "sutazai.db"), _ws.Outside, "/etc/shadow", "/root", "/home", Path.GetTempPath().TrimEnd('/') + "/" + Path.GetFileName(_ws.Base) };
        var command = string.Join("; ", probes.Select(p => $"if [ -e '{p}' ]; then echo 'visible {p}'; else echo 'hidden {p}'; fi"));
        var result = await RunAsync(command + "; cat /etc/passwd");
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(string.Join("", probes.Select(p => $"hidden {p}\n")) + "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\nsandbox:x:65534:65534:sandbox:/workspace:/bin/sh\n", result.Stdout);
    }

    [Fact]
    public async Task HostProcesses_AreInvisible()
    {
        var result = await RunAsync($"ls /proc | grep -c '^[0-9]*$'; [ -e /proc/{Environment.ProcessId}/environ ] && cat /proc/{Environment.ProcessId}/cmdline; cat /proc/1/cmdline | tr '\\0' ' '");
        var lines = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        // bwrap's init, the shell, ls, grep (and the pipe's subshells): a handful, never the server's.
        Assert.InRange(int.Parse(lines[0], System.Globalization.CultureInfo.InvariantCulture), 2, 8);
        Assert.DoesNotContain(lines, l => l.Contains("testhost", StringComparison.Ordinal));
    }

    [Fact]
    public async Task NetworkOff_CannotReachTheHostsLoopback()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var result = await RunAsync($"cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' 2>/dev/null && echo connected || echo refused; " +
            $"bash -c 'exec 3<>/dev/tcp/10.0.2.2/{port}' 2>/dev/null && echo connected || echo unreachable");
        Assert.Equal("lo\nrefused\nunreachable\n", result.Stdout);
        Assert.False(listener.Pending());
    }

    [Fact]
    public async Task NetworkOn_ReachesAnAllowedTarget_ButNotTheHostsLoopbackOrPrivateRanges_UnlessAllowed()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var connect = $"bash -c 'echo hello-from-sandbox >/dev/tcp/10.0.2.2/{port}' 2>/dev/null && echo connected || echo refused";

        var closed = await RunAsync($"{connect}; bash -c 'exec 3<>/dev/tcp/192.168.77.1/80' 2>/dev/null && echo private-connected || echo private-refused",
            o => o.Network = "shell", timeoutSeconds: 30);
        Assert.Equal("refused\nprivate-refused\n", closed.Stdout);
        Assert.False(listener.Pending());

        // Another agent's commands get no network at all under an allowlist naming only "engineer".
        var otherAgent = await RunAsync("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '", o => o.Network = "engineer", agentId: "shell");
        Assert.Equal("lo\n", otherAgent.Stdout);

        var accepting = Task.Run(async () =>
        {
            using var client = await listener.AcceptTcpClientAsync();
            using var reader = new StreamReader(client.GetStream(), Encoding.UTF8);
            return await reader.ReadLineAsync();
        });
        var open = await RunAsync(connect, o => { o.Network = "engineer"; o.NetworkAllowHostLoopback = true; }, agentId: "engineer", timeoutSeconds: 30);
        Assert.Equal("connected\n", open.Stdout);
        Assert.Equal("hello-from-sandbox", await accepting.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task CpuTimeLimit_EndsTheCommand_WithAClearError()
    {
        var result = await RunAsync("while :; do :; done", o => o.CpuSeconds = 1);
        Assert.False(result.TimedOut);
        Assert.Equal(152, result.ExitCode);
        Assert.Equal("cpu-time", result.LimitExceeded);
        Assert.Equal("The command used up its CPU-time limit of 1 s and was stopped (Sutazai:Agents:Sandbox:CpuSeconds).", result.Error);
    }

    [Fact]
    public async Task MemoryLimit_EndsTheCommand_WithAClearError()
    {
        var result = await RunAsync("python3 -c 'x = bytearray(512 * 1024 * 1024); print(len(x))'", o => o.MemoryBytes = 200L * 1024 * 1024);
        Assert.Equal(1, result.ExitCode);
        Assert.Equal("", result.Stdout);
        Assert.Contains("MemoryError", result.Stderr, StringComparison.Ordinal);
        Assert.Equal("memory", result.LimitExceeded);
        Assert.Equal("The command ran out of its memory limit of 200 MiB (Sutazai:Agents:Sandbox:MemoryBytes).", result.Error);
    }

    [Fact]
    public async Task FileSizeLimit_EndsTheCommand_WithAClearError()
    {
        var result = await RunAsync("head -c 100000 /dev/zero > big.bin", o => o.MaxFileBytes = 8192);
        Assert.Equal(153, result.ExitCode);
        Assert.Equal("file-size", result.LimitExceeded);
        Assert.Equal("The command tried to write a file larger than the limit of 8192 bytes (Sutazai:Agents:Sandbox:MaxFileBytes).", result.Error);
        Assert.Equal(8192, new FileInfo(_ws.At("big.bin")).Length);
    }

    [Fact]
    public async Task ProcessLimit_EndsTheCommand_WithAClearError()
    {
        var result = await RunAsync("for i in $(seq 1 100); do sleep 30 & done; wait", o => o.MaxProcesses = 16);
        Assert.False(result.TimedOut);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("Cannot fork", result.Stderr, StringComparison.Ordinal);
        Assert.Equal("processes", result.LimitExceeded);
        Assert.Equal("The command hit the limit of 16 processes (Sutazai:Agents:Sandbox:MaxProcesses).", result.Error);
        await HostProcesses.AssertGoneAsync("sleep 30");
    }

    [Fact]
    public async Task WorkspaceQuota_FlagsTheCommandThatFilledIt_AndRefusesTheNext()
    {
        var full = await RunAsync("head -c 1500000 /dev/zero > fill.bin; echo done", o => o.WorkspaceQuotaBytes = 1024 * 1024);
        Assert.Equal(0, full.ExitCode);
        Assert.Equal("workspace-disk", full.LimitExceeded);
        Assert.Equal("The workspace now holds 1.4 MiB, over its quota of 1 MiB (Sutazai:Agents:Sandbox:WorkspaceQuotaBytes); further commands are refused until files are deleted.", full.Error);
        var tool = Tool(ShellProvider(_ws.Base, sandbox: o => o.WorkspaceQuotaBytes = 1024 * 1024), Context(_ws.Root), "shell_run");
        var refused = await FailsAsync(tool, new { command = "echo again > again.txt" });
        Assert.Equal("The workspace holds 1.4 MiB, over its quota of 1 MiB (Sutazai:Agents:Sandbox:WorkspaceQuotaBytes); delete files before running commands.", refused.Message);
        Assert.False(File.Exists(_ws.At("again.txt")));
    }

    [Fact]
    public async Task MissingBubblewrap_RefusesCommands_NeverRunsThemUnsandboxed()
    {
        var provider = ShellProvider(_ws.Base, sandbox: o => o.BwrapPath = "/nonexistent/bwrap");
        Assert.Equal((false, "The sandbox is unavailable: bubblewrap is not installed at /nonexistent/bwrap (Debian: apt-get install bubblewrap)."), provider.Health());
        var error = await FailsAsync(Tool(provider, Context(_ws.Root), "shell_run"), new { command = "echo ran > ran.txt" });
        Assert.Equal("Commands are refused: the sandbox is unavailable (bubblewrap is not installed at /nonexistent/bwrap (Debian: apt-get install bubblewrap)). " +
            "An administrator must install bubblewrap; commands never run unsandboxed.", error.Message);
        Assert.False(File.Exists(_ws.At("ran.txt")));
    }

    [Fact]
    public async Task ModeNone_RunsAsTheServersUser_AsDocumented()
    {
        var result = await RunAsync("pwd; id -u", o => o.Mode = "none");
        Assert.Equal($"{_ws.Root}\n{Sutazai.Agents.Tools.Native.GetEffectiveUserId()}\n", result.Stdout);
    }

    [Fact]
    public async Task ASandboxOutlivesTheThreadThatStartedIt()
    {
        // bwrap --die-with-parent kills the sandbox when its parent *thread* exits (PR_SET_PDEATHSIG): the command is
        // started here from a thread that ends at once, and must still finish with its output.
        Task<ShellResult>? running = null;
        var starter = new Thread(() => running = ShellRunner.RunAsync(
            ["/usr/bin/bwrap", "--die-with-parent", "--dev-bind", "/", "/", "/bin/sh", "-c", "sleep 1; echo alive"],
            new Dictionary<string, string> { ["PATH"] = ShellRunner.SearchPath }, Path.GetTempPath(), TimeSpan.FromSeconds(30), 4096, null, CancellationToken.None));
        starter.Start();
        starter.Join();
        var result = await running!;
        Assert.Equal("alive\n", result.Stdout);
        Assert.Equal(0, result.ExitCode);
    }
}

using System.Diagnostics;
using System.Globalization;
using Sutazai.Knowledge.Web;
using System.Text;
using Microsoft.Extensions.Options;
using Sutazai.Agents.Tools;

namespace Sutazai.Agents.Sandbox;

/// <summary>One command for the sandbox: what to run, in which workspace, for which agent and tool family.</summary>
public sealed record SandboxCommand(string Command, string Workspace, string? AgentId, string Family, TimeSpan Timeout, int OutputCapBytes);

/// <summary>Whether commands can run, how (<c>bubblewrap</c> or <c>none</c>), and why not when they cannot.</summary>
public sealed record SandboxStatus(bool Available, string Mode, string? Reason, bool ProcessLimitEnforced);

/// <summary>
/// Runs agent commands in a bubblewrap sandbox: new user, pid, mount, IPC, UTS and network namespaces; uid 65534;
/// the system's programs read-only (<c>/usr</c> and the few <c>/etc</c> files programs need); the run's workspace
/// read-write at <c>/workspace</c>; a private <c>/proc</c>, <c>/dev</c> and size-capped <c>/tmp</c>; nothing else of the
/// host. The kernel enforces the limits: RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE and RLIMIT_NPROC through prlimit inside
/// the sandbox, plus a pids cgroup where the server may create one (RLIMIT_NPROC does not bind a sandbox that maps to
/// the host's root). When the command ends its pid namespace ends, so nothing it started outlives it. With network
/// allowed, slirp4netns gives the sandbox its own user-mode network and nftables rules inside its namespace refuse
/// the host's loopback and private ranges (<see cref="SsrfGuard.Blocked"/>) unless allowed.
/// </summary>
public sealed class ProcessSandbox
{
    public const string WorkspaceMount = "/workspace";
    public const int SandboxUid = 65534;

    private readonly SandboxOptions _options;
    private readonly AgentDataDir _data;
    private readonly ILogger<ProcessSandbox> _logger;
    private readonly Lazy<SandboxStatus> _status;
    private readonly Lazy<string?> _cgroupParent;

    public ProcessSandbox(IOptions<SandboxOptions> options, AgentDataDir data, ILogger<ProcessSandbox> logger)
    {
        _options = options.Value;
        _logger = logger;
        _data = data;
        _cgroupParent = new Lazy<string?>(CreateCgroupParent);
        _status = new Lazy<SandboxStatus>(Probe);
    }

    public SandboxOptions Options => _options;

    /// <summary>The sandbox's own passwd, group, hosts and resolv.conf (read when a command starts, not when the server does).</summary>
    private string Etc => Path.Join(_data.Path, "sandbox", "etc");

    public SandboxStatus Status => _status.Value;

    public async Task<ShellResult> RunAsync(SandboxCommand command, CancellationToken ct)
    {
        var status = Status;
        if (!status.Available)
            throw new ToolException($"Commands are refused: the sandbox is unavailable ({status.Reason}). An administrator must install bubblewrap; commands never run unsandboxed.");
        if (_options.IsUnsandboxed) return await RunUnsandboxedAsync(command, ct);

        var network = _options.NetworkAllowed(command.AgentId, command.Family);
        if (network && NetworkProblem() is { } problem) throw new ToolException($"Network was allowed for this agent but cannot be set up: {problem}");
        var cgroup = CreateCgroup();
        Process? slirp = null;
        try
        {
            var argv = new List<string>();
            if (cgroup is not null) argv.AddRange([ShellRunner.Shell, "-c", "echo $$ > \"$0\" && exec \"$@\"", Path.Join(cgroup, "cgroup.procs")]);
            // With network the sandbox joins a network namespace made here, owned by the host (so the sandbox cannot
            // change its rules), instead of the empty one bwrap would make.
            if (network) argv.AddRange([_options.UnsharePath, "--net", "--"]);
            argv.Add(_options.BwrapPath);
            argv.AddRange(BwrapArguments(command.Workspace, network));
            if (network) argv.AddRange([ShellRunner.Shell, "-c", "read -r _; exec \"$@\"", "gate"]);
            argv.AddRange(LimitArguments());
            argv.AddRange([ShellRunner.Shell, "-c", command.Command]);
            Func<int, CancellationToken, Task>? gate = network ? async (pid, token) => slirp = await ConnectNetworkAsync(pid, token) : null;
            var result = await ShellRunner.RunAsync(argv, Environment(WorkspaceMount, "/tmp"), command.Workspace, command.Timeout, command.OutputCapBytes, gate, ct);
            return Classify(result);
        }
        finally
        {
            if (slirp is not null)
            {
                try
                {
                    if (!slirp.HasExited) slirp.Kill();
                }
                catch (InvalidOperationException)
                {
                    // It ended with the namespace.
                }
                slirp.Dispose();
            }
            if (cgroup is not null) await RemoveCgroupAsync(cgroup);
        }
    }

    /// <summary>The explicit, documented-as-unsafe mode: a process group in the workspace, as the server's user.</summary>
    private async Task<ShellResult> RunUnsandboxedAsync(SandboxCommand command, CancellationToken ct)
    {
        var setsid = ShellRunner.Setsid ?? throw new ToolException("setsid (util-linux) is not installed, so commands cannot be confined to a process group.");
        var tmp = Path.Join(command.Workspace, ".tmp");
        Directory.CreateDirectory(tmp);
        return await ShellRunner.RunAsync([setsid, ShellRunner.Shell, "-c", command.Command], Environment(command.Workspace, tmp),
            command.Workspace, command.Timeout, command.OutputCapBytes, null, ct);
    }

    private static Dictionary<string, string> Environment(string home, string tmp) => new()
    {
        ["PATH"] = ShellRunner.SearchPath,
        ["HOME"] = home,
        ["LANG"] = "C.UTF-8",
        ["TMPDIR"] = tmp,
    };

    private List<string> BwrapArguments(string workspace, bool network)
    {
        var args = new List<string> { "--unshare-all" };
        if (network) args.Add("--share-net");
        args.AddRange(["--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--uid", SandboxUid.ToString(CultureInfo.InvariantCulture), "--gid", SandboxUid.ToString(CultureInfo.InvariantCulture),
            "--hostname", "sandbox", "--ro-bind", "/usr", "/usr"]);
        foreach (var top in new[] { "bin", "sbin", "lib", "lib32", "lib64", "libx32" })
        {
            var path = "/" + top;
            var info = new DirectoryInfo(path);
            if (info.LinkTarget is { } target) args.AddRange(["--symlink", target, path]);
            else if (info.Exists) args.AddRange(["--ro-bind", path, path]);
        }
        foreach (var shared in new[] { "/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/ssl", "/etc/ca-certificates",
                     "/etc/nsswitch.conf", "/etc/localtime", "/etc/mime.types" })
        {
            if (File.Exists(shared) || Directory.Exists(shared)) args.AddRange(["--ro-bind", shared, shared]);
        }
        foreach (var own in new[] { "passwd", "group", "hosts" }) args.AddRange(["--ro-bind", Path.Join(Etc, own), "/etc/" + own]);
        args.AddRange(["--ro-bind", Path.Join(Etc, network ? "resolv-network.conf" : "resolv-none.conf"), "/etc/resolv.conf"]);
        args.AddRange(["--proc", "/proc", "--dev", "/dev", "--size", _options.TmpBytes.ToString(CultureInfo.InvariantCulture), "--tmpfs", "/tmp",
            "--bind", workspace, WorkspaceMount, "--chdir", WorkspaceMount]);
        return args;
    }

    private List<string> LimitArguments()
    {
        var cpu = _options.CpuSeconds;
        // Soft limit first (SIGXCPU, which the result names), a hard stop two seconds later for programs that catch it.
        return [_options.PrlimitPath, $"--cpu={cpu}:{cpu + 2}", $"--as={_options.MemoryBytes}", $"--nproc={_options.MaxProcesses}",
            $"--fsize={_options.MaxFileBytes}", "--core=0", "--"];
    }

    /// <summary>Names the limit that ended a command, from its exit status (128 + signal) or the error it printed.</summary>
    private ShellResult Classify(ShellResult result)
    {
        if (result.TimedOut) return result;
        var stderr = result.Stderr;
        bool Says(params string[] texts) => texts.Any(t => stderr.Contains(t, StringComparison.OrdinalIgnoreCase));
        if (result.ExitCode == 128 + 24)
            return result with { LimitExceeded = "cpu-time", Error = $"The command used up its CPU-time limit of {_options.CpuSeconds} s and was stopped (Sutazai:Agents:Sandbox:CpuSeconds)." };
        if (result.ExitCode == 128 + 25 || Says("File size limit exceeded", "File too large"))
            return result with { LimitExceeded = "file-size", Error = $"The command tried to write a file larger than the limit of {Bytes(_options.MaxFileBytes)} (Sutazai:Agents:Sandbox:MaxFileBytes)." };
        if (result.ExitCode != 0 && Says("Cannot fork", "fork: retry", "Resource temporarily unavailable"))
            return result with { LimitExceeded = "processes", Error = $"The command hit the limit of {_options.MaxProcesses} processes (Sutazai:Agents:Sandbox:MaxProcesses)." };
        if (result.ExitCode != 0 && Says("Cannot allocate memory", "MemoryError", "memory exhausted", "out of memory", "bad_alloc"))
            return result with { LimitExceeded = "memory", Error = $"The command ran out of its memory limit of {Bytes(_options.MemoryBytes)} (Sutazai:Agents:Sandbox:MemoryBytes)." };
        return result;
    }

    public static string Bytes(long bytes) => bytes >= 1024 * 1024 ? $"{bytes / (1024.0 * 1024):0.#} MiB" : $"{bytes} bytes";

    // ---- availability ------------------------------------------------------------------------------------------------

    private SandboxStatus Probe()
    {
        if (_options.IsUnsandboxed)
        {
            _logger.LogWarning("Sutazai:Agents:Sandbox:Mode=none: agent commands run UNSANDBOXED as the server's user, able to read its keys and database. Use only on a single-user machine.");
            var problem = ShellRunner.Setsid is null ? "setsid (util-linux) is not installed" : null;
            return new SandboxStatus(problem is null, "none", problem ?? "unsandboxed (Sutazai:Agents:Sandbox:Mode=none)", false);
        }
        if (!OperatingSystem.IsLinux()) return Unavailable("bubblewrap needs Linux");
        if (!File.Exists(_options.BwrapPath)) return Unavailable($"bubblewrap is not installed at {_options.BwrapPath} (Debian: apt-get install bubblewrap)");
        if (!File.Exists(_options.PrlimitPath)) return Unavailable($"prlimit (util-linux) is not installed at {_options.PrlimitPath}");
        try
        {
            WriteEtc();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return Unavailable($"the sandbox's /etc files could not be written to {Etc}: {ex.Message}");
        }
        var probeWorkspace = Directory.CreateTempSubdirectory("sutazai-sandbox-probe-").FullName;
        try
        {
            var argv = new List<string> { _options.BwrapPath };
            argv.AddRange(BwrapArguments(probeWorkspace, network: false));
            argv.AddRange(LimitArguments());
            argv.AddRange([ShellRunner.Shell, "-c", "test \"$(id -u)\" = 65534"]);
            var result = ShellRunner.RunAsync(argv, Environment(WorkspaceMount, "/tmp"), probeWorkspace, TimeSpan.FromSeconds(15), 4096, null, CancellationToken.None)
                .GetAwaiter().GetResult();
            if (result.ExitCode != 0)
                return Unavailable($"bubblewrap could not create its namespaces (exit {result.ExitCode}: {result.Stderr.Trim()}); user namespaces may be disabled");
        }
        catch (ToolException ex)
        {
            return Unavailable(ex.Message);
        }
        finally
        {
            Directory.Delete(probeWorkspace, recursive: true);
        }
        var processLimit = !IsRoot || _cgroupParent.Value is not null;
        if (!processLimit)
            _logger.LogWarning("The sandbox's process limit is not enforced: the server runs as root (RLIMIT_NPROC does not bind root) and cannot create a pids cgroup.");
        return new SandboxStatus(true, "bubblewrap", null, processLimit);
    }

    private SandboxStatus Unavailable(string reason)
    {
        _logger.LogError("Agent commands are refused: the sandbox is unavailable ({Reason}).", reason);
        return new SandboxStatus(false, "bubblewrap", reason, false);
    }

    private string? NetworkProblem()
    {
        foreach (var (path, what) in new[] { (_options.Slirp4netnsPath, "slirp4netns"), (_options.NsenterPath, "nsenter (util-linux)"),
                     (_options.UnsharePath, "unshare (util-linux)"), (_options.IpPath, "ip (iproute2)"), (_options.NftPath, "nft (nftables)") })
            if (!File.Exists(path)) return $"{what} is not installed at {path}";
        return null;
    }

    private void WriteEtc()
    {
        Directory.CreateDirectory(Etc);
        void Write(string name, string text)
        {
            var path = Path.Join(Etc, name);
            if (!File.Exists(path) || File.ReadAllText(path) != text) File.WriteAllText(path, text);
        }
        Write("passwd", "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\nsandbox:x:65534:65534:sandbox:/workspace:/bin/sh\n");
        Write("group", "root:x:0:\nsandbox:x:65534:\n");
        Write("hosts", "127.0.0.1 localhost sandbox\n::1 localhost\n");
        Write("resolv-none.conf", "");
        Write("resolv-network.conf", "nameserver 10.0.2.3\n");
    }

    private static bool IsRoot => Native.GetEffectiveUserId() == 0;

    // ---- pids cgroup ---------------------------------------------------------------------------------------------------

    private static readonly string[] CgroupRoots = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"];

    private static string? CreateCgroupParent()
    {
        foreach (var root in CgroupRoots)
        {
            if (!File.Exists(Path.Join(root, "cgroup.procs"))) continue;
            var v2 = File.Exists(Path.Join(root, "cgroup.controllers"));
            if (v2 && !File.ReadAllText(Path.Join(root, "cgroup.controllers")).Split(' ', '\n').Contains("pids")) continue;
            try
            {
                var parent = Path.Join(root, "sutazai-sandbox");
                Directory.CreateDirectory(parent);
                if (v2) File.WriteAllText(Path.Join(root, "cgroup.subtree_control"), "+pids");
                if (v2) File.WriteAllText(Path.Join(parent, "cgroup.subtree_control"), "+pids");
                return File.Exists(Path.Join(parent, "cgroup.procs")) ? parent : null;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Not ours to write (no root, read-only cgroupfs): try the next layout.
            }
        }
        return null;
    }

    private string? CreateCgroup()
    {
        if (!IsRoot || _cgroupParent.Value is not { } parent) return null;
        var path = Path.Join(parent, Guid.NewGuid().ToString("N"));
        try
        {
            Directory.CreateDirectory(path);
            File.WriteAllText(Path.Join(path, "pids.max"), _options.MaxProcesses.ToString(CultureInfo.InvariantCulture));
            return path;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ToolException($"The sandbox's process limit could not be set up ({ex.Message}); the command was not run.");
        }
    }

    private static async Task RemoveCgroupAsync(string path)
    {
        // Empty once the namespace's last process is reaped, which can trail the command's exit by a millisecond or
        // so (bwrap reports the exit before its init is gone): retry after 1 ms, then less often, for about a second.
        var delay = 1;
        for (var waited = 0; waited < 1000; waited += delay, delay = Math.Min(delay * 2, 20))
        {
            try
            {
                Directory.Delete(path);
                return;
            }
            catch (IOException)
            {
                await Task.Delay(delay, CancellationToken.None);
            }
            catch (UnauthorizedAccessException)
            {
                return;
            }
        }
    }

    // ---- network -------------------------------------------------------------------------------------------------------

    /// <summary>
    /// Gives the waiting sandbox a user-mode network (slirp4netns on a tap device in its namespace) and, inside that
    /// namespace where the sandbox cannot change them, rules that refuse loopback and private ranges of the host.
    /// </summary>
    private async Task<Process> ConnectNetworkAsync(int pid, CancellationToken ct)
    {
        var target = pid.ToString(CultureInfo.InvariantCulture);
        // The process starts in the server's own namespace and moves when unshare runs: attaching before that would
        // configure the host's network, so wait until its namespace is not ours.
        var own = NetworkNamespaceOf("self");
        var waiting = Stopwatch.StartNew();
        while (NetworkNamespaceOf(target) is var theirs && (theirs is null || theirs == own))
        {
            if (theirs is null) throw new ToolException("The sandbox ended before its network was set up.");
            if (waiting.Elapsed > TimeSpan.FromSeconds(10)) throw new ToolException("The sandbox did not get its own network namespace within 10 s.");
            await Task.Delay(5, ct);
        }
        var start = new ProcessStartInfo(_options.Slirp4netnsPath) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "--configure", "--mtu=65520" }) start.ArgumentList.Add(arg);
        if (!_options.NetworkAllowHostLoopback) start.ArgumentList.Add("--disable-host-loopback");
        start.ArgumentList.Add(target);
        start.ArgumentList.Add("tap0");
        var slirp = Process.Start(start) ?? throw new ToolException("slirp4netns could not be started.");
        var slirpError = slirp.StandardError.ReadToEndAsync(CancellationToken.None);
        _ = slirp.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var watch = Stopwatch.StartNew();
        while (!HasDefaultRoute(pid))
        {
            if (slirp.HasExited)
                throw new ToolException($"slirp4netns exited with code {slirp.ExitCode} before the sandbox's network was up: {(await slirpError).Trim()}");
            if (watch.Elapsed > TimeSpan.FromSeconds(10)) throw new ToolException("The sandbox's network did not come up within 10 s.");
            await Task.Delay(10, ct);
        }

        var rules = new ProcessStartInfo(_options.NsenterPath) { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in new[] { "-t", target, "-n", "--", ShellRunner.Shell, "-c", "\"$0\" link set lo up && exec \"$1\" -f -", _options.IpPath, _options.NftPath })
            rules.ArgumentList.Add(arg);
        using var nft = Process.Start(rules) ?? throw new ToolException("nft could not be started.");
        await nft.StandardInput.WriteAsync(NetworkRules());
        nft.StandardInput.Close();
        var error = await nft.StandardError.ReadToEndAsync(ct);
        await nft.WaitForExitAsync(ct);
        if (nft.ExitCode != 0) throw new ToolException($"The sandbox's network rules could not be set (exit {nft.ExitCode}: {error.Trim()}); the command was not run.");
        return slirp;
    }

    public string NetworkRules()
    {
        var allowed = _options.NetworkAllowedPrivateRanges.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var rules = new StringBuilder("table inet sutazai_sandbox {\n  chain output {\n    type filter hook output priority 0; policy accept;\n    oifname \"lo\" accept\n");
        rules.Append("    ip daddr 10.0.2.3 udp dport 53 accept\n    ip daddr 10.0.2.3 tcp dport 53 accept\n");
        if (_options.NetworkAllowHostLoopback) rules.Append("    ip daddr 10.0.2.2 accept\n");
        foreach (var range in allowed) rules.Append(range.Contains(':', StringComparison.Ordinal) ? "    ip6" : "    ip").Append(" daddr ").Append(range).Append(" accept\n");
        var v4 = SsrfGuard.Blocked.Where(n => n.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork).Select(n => n.ToString());
        var v6 = SsrfGuard.Blocked.Where(n => n.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6).Select(n => n.ToString());
        rules.Append("    ip daddr { ").Append(string.Join(", ", v4)).Append(" } reject\n");
        rules.Append("    ip6 daddr { ").Append(string.Join(", ", v6)).Append(" } reject\n  }\n}\n");
        return rules.ToString();
    }

    private static string? NetworkNamespaceOf(string pid)
    {
        try
        {
            return new FileInfo($"/proc/{pid}/ns/net").LinkTarget;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static bool HasDefaultRoute(int pid)
    {
        try
        {
            return File.ReadLines($"/proc/{pid}/net/route").Skip(1).Any(l => l.Split('\t') is [var device, "00000000", ..] && device == "tap0");
        }
        catch (IOException)
        {
            return false;
        }
    }
}

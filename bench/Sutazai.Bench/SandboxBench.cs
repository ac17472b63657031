using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging.Abstractions;
using Sutazai.Agents;
using Sutazai.Agents.Sandbox;
using Sutazai.Agents.Tools;
using MsOptions = Microsoft.Extensions.Options.Options;

/// <summary>
/// Sandbox start-up (issue 12, <c>--scenario sandbox</c>): wall time of one <c>true</c> command through the product's
/// <see cref="ProcessSandbox"/> (bubblewrap + prlimit + pids cgroup when root; network off, and on through slirp4netns)
/// against the same <c>/bin/sh -c true</c> started directly by <see cref="ShellRunner"/>, which both sandboxed paths end
/// in. The modes take turns, rotating who goes first, so the machine's noise hits every row alike.
/// </summary>
internal static class SandboxBench
{
    private const string Command = "true";

    private sealed record Mode(string Name, Func<Task<ShellResult>> Run)
    {
        public List<double> Ms { get; } = [];
    }

    public static async Task<int> RunAsync(int iterations, int warmups)
    {
        var data = Directory.CreateTempSubdirectory("sutazai-bench-sandbox-").FullName;
        try
        {
            var workspace = Directory.CreateDirectory(Path.Join(data, "workspace")).FullName;
            var timeout = TimeSpan.FromSeconds(30);
            const int cap = 16384;
            ProcessSandbox Sandbox(Action<SandboxOptions>? change = null)
            {
                var options = new SandboxOptions();
                change?.Invoke(options);
                return new ProcessSandbox(MsOptions.Create(options), new AgentDataDir(Path.GetFullPath(data)), NullLogger<ProcessSandbox>.Instance);
            }
            var environment = new Dictionary<string, string> { ["PATH"] = ShellRunner.SearchPath, ["HOME"] = workspace, ["LANG"] = "C.UTF-8", ["TMPDIR"] = "/tmp" };
            var isolated = Sandbox();
            var networked = Sandbox(o => o.Network = "*");
            var unsandboxed = Sandbox(o => o.Mode = "none");
            var candidates = new List<Mode>
            {
                new("direct: ShellRunner, /bin/sh -c true", () => ShellRunner.RunAsync([ShellRunner.Shell, "-c", Command], environment, workspace, timeout, cap, null, CancellationToken.None)),
                new("ProcessSandbox Mode=none (setsid, unsafe)", () => unsandboxed.RunAsync(new SandboxCommand(Command, workspace, null, "shell", timeout, cap), CancellationToken.None)),
                new("ProcessSandbox bubblewrap, network off (default)", () => isolated.RunAsync(new SandboxCommand(Command, workspace, null, "shell", timeout, cap), CancellationToken.None)),
                new("ProcessSandbox bubblewrap, network on (slirp4netns + nft)", () => networked.RunAsync(new SandboxCommand(Command, workspace, null, "shell", timeout, cap), CancellationToken.None)),
            };

            var status = isolated.Status;
            Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.OSArchitecture}; " +
                $"running as {Environment.UserName}; bubblewrap {Version(new SandboxOptions().BwrapPath)}; " +
                $"pids cgroup: {(status.ProcessLimitEnforced ? "enforced" : "not enforced")}; {iterations} runs of `{Command}` per mode after {warmups} warm-ups, interleaved");
            if (!status.Available)
            {
                Console.Error.WriteLine($"The sandbox is unavailable here: {status.Reason}");
                return 2;
            }

            var modes = new List<Mode>();
            foreach (var mode in candidates)
            {
                try
                {
                    for (var i = 0; i < warmups; i++) Check(await mode.Run());
                    modes.Add(mode);
                }
                catch (Exception ex) when (ex is ToolException or InvalidOperationException)
                {
                    Console.WriteLine($"skipped \"{mode.Name}\": {ex.Message}");
                }
            }

            for (var i = 0; i < iterations; i++)
            {
                for (var k = 0; k < modes.Count; k++)
                {
                    var mode = modes[(i + k) % modes.Count];
                    var watch = Stopwatch.StartNew();
                    var result = await mode.Run();
                    mode.Ms.Add(watch.Elapsed.TotalMilliseconds);
                    Check(result);
                }
            }

            var direct = Summary(modes[0].Ms);
            Console.WriteLine();
            Console.WriteLine("| mode | n | p50 ms | p99 ms | mean ms | added p50 vs direct ms | ratio p50 |");
            Console.WriteLine("|---|---|---|---|---|---|---|");
            foreach (var mode in modes)
            {
                var s = Summary(mode.Ms);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {mode.Name} | {mode.Ms.Count} | {s.P50:F1} | {s.P99:F1} | {s.Mean:F1} | {s.P50 - direct.P50:+0.0;-0.0;0.0} | {s.P50 / direct.P50:F2}× |"));
            }
            if (modes.FirstOrDefault(m => m.Name.Contains("network off", StringComparison.Ordinal)) is not { } isolatedMode) return 1;
            var added = Summary(isolatedMode.Ms).P50 - direct.P50;
            Console.WriteLine();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"added p50, sandbox (network off) vs direct: {added:F1} ms; target ≤ 30 ms: {(added <= 30 ? "met" : "NOT met")}"));
            return 0;
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    private static void Check(ShellResult result)
    {
        if (result.ExitCode != 0 || result.TimedOut)
            throw new InvalidOperationException($"`{Command}` exited {result.ExitCode}{(result.TimedOut ? " (timed out)" : "")}: {result.Stderr.Trim()}");
    }

    private sealed record Stats(double P50, double P99, double Mean);

    /// <summary>Nearest-rank percentiles: of 50 runs, p50 is the 25th fastest and p99 the slowest.</summary>
    private static Stats Summary(List<double> ms)
    {
        var sorted = ms.Order().ToList();
        double Rank(double p) => sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];
        return new Stats(Rank(0.50), Rank(0.99), sorted.Average());
    }

    private static string Version(string bwrap)
    {
        if (!File.Exists(bwrap)) return "absent";
        using var process = Process.Start(new ProcessStartInfo(bwrap, "--version") { RedirectStandardOutput = true, UseShellExecute = false })!;
        var text = process.StandardOutput.ReadToEnd().Trim();
        process.WaitForExit();
        return text.Replace("bubblewrap ", "", StringComparison.Ordinal);
    }
}

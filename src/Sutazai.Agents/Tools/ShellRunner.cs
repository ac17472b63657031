using System.Diagnostics;

namespace Sutazai.Agents.Tools;

/// <summary>
/// What a command did. <paramref name="LimitExceeded"/> names the kernel limit that ended it (<c>cpu-time</c>,
/// <c>memory</c>, <c>file-size</c>, <c>processes</c>, <c>workspace-disk</c>), and <paramref name="Error"/> says so in words.
/// </summary>
public sealed record ShellResult(int ExitCode, string Stdout, string Stderr, bool TimedOut, bool Truncated, long DurationMs,
    string? LimitExceeded = null, string? Error = null);

/// <summary>
/// Starts one process with a cleared environment, no standard input (or one line of it: see <paramref name="gate"/>),
/// capped output and a timeout, and kills it and every descendant when it ends, times out or is cancelled. Isolation
/// is the caller's: <see cref="Sandbox.ProcessSandbox"/> puts bubblewrap in front of the command.
/// </summary>
public static class ShellRunner
{
    public const string Shell = "/bin/sh";
    public const string SearchPath = "/usr/local/bin:/usr/bin:/bin";

    private static readonly string[] SetsidCandidates = ["/usr/bin/setsid", "/bin/setsid", "/usr/local/bin/setsid"];

    /// <summary>The setsid binary, or null when this machine has none.</summary>
    public static string? Setsid => SetsidCandidates.FirstOrDefault(File.Exists);

    /// <summary>
    /// Runs <paramref name="argv"/>. When <paramref name="gate"/> is given the process is started with its standard input
    /// open; the gate runs (e.g. to set up the sandbox's network) and then one newline is written and the input closed.
    /// </summary>
    public static async Task<ShellResult> RunAsync(IReadOnlyList<string> argv, IReadOnlyDictionary<string, string> environment,
        string workingDirectory, TimeSpan timeout, int outputCapBytes, Func<int, CancellationToken, Task>? gate, CancellationToken ct)
    {
        var start = new ProcessStartInfo(argv[0])
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in argv.Skip(1)) start.ArgumentList.Add(arg);
        // Nothing of the server's environment (keys, connection strings, tokens) reaches the command.
        start.Environment.Clear();
        foreach (var (key, value) in environment) start.Environment[key] = value;

        var watch = Stopwatch.StartNew();
        using var process = new Process { StartInfo = start };
        try
        {
            // From the launcher thread, so bwrap's --die-with-parent follows the server, not this (pool) thread.
            await ProcessLauncher.StartAsync(process);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new ToolException($"The command could not be started: {ex.Message}");
        }
        var stdout = new CappedReader(process.StandardOutput.BaseStream, outputCapBytes);
        var stderr = new CappedReader(process.StandardError.BaseStream, outputCapBytes);
        var reading = Task.WhenAll(stdout.RunAsync(), stderr.RunAsync());

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        var timedOut = false;
        ToolException? gateFailure = null;
        try
        {
            if (gate is not null)
            {
                try
                {
                    await gate(process.Id, deadline.Token);
                }
                catch (ToolException ex) when (process.WaitForExit(TimeSpan.FromSeconds(1)))
                {
                    // The process itself ended while the gate waited on it: its own error (bwrap's) is the cause
                    // that matters, so it is reported with the gate's below.
                    gateFailure = ex;
                    throw;
                }
                await process.StandardInput.WriteAsync("\n");
                await process.StandardInput.FlushAsync(deadline.Token);
            }
            process.StandardInput.Close();
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            timedOut = !ct.IsCancellationRequested;
        }
        catch (IOException)
        {
            // The process ended before it read its gate line; its exit code tells why.
        }
        catch (ToolException) when (gateFailure is not null)
        {
            // Reported below, once the process's error output is read.
        }
        finally
        {
            KillTree(process);
        }

        // Every writer is dead now, so both pipes reach end of file; a process that escaped and kept a pipe open
        // (possible only without the sandbox's pid namespace) is not waited for.
        await Task.WhenAny(reading, Task.Delay(TimeSpan.FromSeconds(2), CancellationToken.None));
        if (gateFailure is not null)
            throw new ToolException($"{gateFailure.Message} The sandbox had already ended (exit {process.ExitCode}): {stderr.Text.Trim()}");
        ct.ThrowIfCancellationRequested();
        await process.WaitForExitAsync(CancellationToken.None);
        return new ShellResult(process.ExitCode, stdout.Text, stderr.Text, timedOut, stdout.Truncated || stderr.Truncated, watch.ElapsedMilliseconds);
    }

    private static void KillTree(Process process)
    {
        // A process started through setsid leads its own group: kill the group first (children that left the
        // tree but not the group), never our own group (possible only if it had not yet left it).
        var group = Native.ProcessGroupOf(process.Id);
        if (group == process.Id && group != Native.ProcessGroupOf(Environment.ProcessId)) Native.KillProcessGroup(group, Native.SigKill);
        try
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // It exited between the check and the kill.
        }
    }

    /// <summary>Drains a stream to its end, keeping the first <c>cap</c> bytes.</summary>
    private sealed class CappedReader(Stream stream, int cap)
    {
        private readonly Lock _lock = new();
        private readonly MemoryStream _kept = new();
        private bool _truncated;

        public bool Truncated
        {
            get
            {
                lock (_lock) return _truncated;
            }
        }

        public string Text
        {
            get
            {
                lock (_lock) return TextCaps.DecodePrefix(_kept.GetBuffer().AsSpan(0, (int)_kept.Length), (int)_kept.Length, _truncated);
            }
        }

        public async Task RunAsync()
        {
            var buffer = new byte[16384];
            try
            {
                int read;
                while ((read = await stream.ReadAsync(buffer, CancellationToken.None)) > 0)
                {
                    lock (_lock)
                    {
                        var room = cap - (int)_kept.Length;
                        if (read > room) _truncated = true;
                        if (room > 0) _kept.Write(buffer, 0, Math.Min(room, read));
                    }
                }
            }
            catch (Exception ex) when (ex is ObjectDisposedException or IOException)
            {
                // The pipe was closed under us (the process was disposed while an escaped writer held it open).
            }
        }
    }
}

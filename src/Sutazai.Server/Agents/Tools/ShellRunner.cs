using System.Diagnostics;

namespace Sutazai.Server.Agents.Tools;

public sealed record ShellResult(int ExitCode, string Stdout, string Stderr, bool TimedOut, bool Truncated, long DurationMs);

/// <summary>
/// Runs <c>/bin/sh -c</c> in a directory as the leader of a new session (via <c>setsid</c>), with a cleared environment,
/// capped output and a timeout. When the command ends, times out or is cancelled, the whole process group is killed
/// with SIGKILL, so background jobs it started do not outlive it. A process that deliberately leaves the group
/// (its own <c>setsid</c>, a double fork into a new session) is not tracked: this is a sandbox of working directory,
/// environment and limits, not an OS jail.
/// </summary>
public static class ShellRunner
{
    public const string Shell = "/bin/sh";
    public const string SearchPath = "/usr/local/bin:/usr/bin:/bin";

    private static readonly string[] SetsidCandidates = ["/usr/bin/setsid", "/bin/setsid", "/usr/local/bin/setsid"];

    /// <summary>The setsid binary, or null when this machine has none.</summary>
    public static string? Setsid => SetsidCandidates.FirstOrDefault(File.Exists);

    public static async Task<ShellResult> RunAsync(string command, string workingDirectory, TimeSpan timeout, int outputCapBytes, CancellationToken ct)
    {
        var setsid = Setsid ?? throw new ToolException("setsid (util-linux) is not installed, so commands cannot be confined to a process group.");
        var tmp = Path.Join(workingDirectory, ".tmp");
        Directory.CreateDirectory(tmp);
        var start = new ProcessStartInfo(setsid)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Shell);
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(command);
        // Nothing of the server's environment (keys, connection strings, tokens) reaches the command.
        start.Environment.Clear();
        start.Environment["PATH"] = SearchPath;
        start.Environment["HOME"] = workingDirectory;
        start.Environment["LANG"] = "C.UTF-8";
        start.Environment["TMPDIR"] = tmp;

        var watch = Stopwatch.StartNew();
        using var process = new Process { StartInfo = start };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new ToolException($"The shell could not be started: {ex.Message}");
        }
        // setsid execs the shell in place (a child of .NET is never a group leader), so its pid is the group id.
        var group = process.Id;
        process.StandardInput.Close();
        var stdout = new CappedReader(process.StandardOutput.BaseStream, outputCapBytes);
        var stderr = new CappedReader(process.StandardError.BaseStream, outputCapBytes);
        var reading = Task.WhenAll(stdout.RunAsync(), stderr.RunAsync());

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        var timedOut = false;
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            timedOut = !ct.IsCancellationRequested;
        }
        finally
        {
            KillTree(process, group);
        }

        // Every writer is dead now, so both pipes reach end of file; a process that escaped the group and kept a
        // pipe open is not waited for.
        await Task.WhenAny(reading, Task.Delay(TimeSpan.FromSeconds(2), CancellationToken.None));
        ct.ThrowIfCancellationRequested();
        await process.WaitForExitAsync(CancellationToken.None);
        return new ShellResult(process.ExitCode, stdout.Text, stderr.Text, timedOut, stdout.Truncated || stderr.Truncated, watch.ElapsedMilliseconds);
    }

    private static void KillTree(Process process, int group)
    {
        // Never our own group: that would kill the server (possible only if the shell had not yet left it).
        if (group != Native.ProcessGroupOf(Environment.ProcessId)) Native.KillProcessGroup(group, Native.SigKill);
        try
        {
            // Children that changed their process group but are still descendants.
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

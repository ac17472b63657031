using System.Collections.Concurrent;
using System.Diagnostics;

namespace Sutazai.Agents.Tools;

/// <summary>
/// Starts processes from one thread that lives as long as the server. bubblewrap's <c>--die-with-parent</c> uses
/// <c>PR_SET_PDEATHSIG</c>, and Linux ties that to the <em>thread</em> that forked the child (prctl(2)): a sandbox
/// started from a thread-pool thread was SIGKILLed (exit 137, no output) whenever that thread retired, while the command
/// still ran. Started from here, it dies only with the server.
/// </summary>
public static class ProcessLauncher
{
    private static readonly BlockingCollection<(Process Process, TaskCompletionSource Started)> Pending = [];

    static ProcessLauncher()
    {
        var thread = new Thread(Run) { IsBackground = true, Name = "sutazai-process-launcher" };
        thread.Start();
    }

    /// <summary>Starts <paramref name="process"/> on the launcher thread; faults with what <see cref="Process.Start()"/> threw.</summary>
    public static Task StartAsync(Process process)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Pending.Add((process, started));
        return started.Task;
    }

    private static void Run()
    {
        foreach (var (process, started) in Pending.GetConsumingEnumerable())
        {
            try
            {
                process.Start();
                started.SetResult();
            }
            catch (Exception ex)
            {
                started.SetException(ex);
            }
        }
    }
}

using System.Runtime.InteropServices;

namespace Sutazai.Agents.Tools;

/// <summary>The few POSIX calls .NET does not expose: canonical paths and signalling a whole process group.</summary>
internal static class Native
{
    public const int SigKill = 9;

    /// <summary>realpath(3): the absolute path with every symbolic link resolved, or null when a component is missing.</summary>
    public static string? RealPath(string path)
    {
        var resolved = realpath(path, IntPtr.Zero);
        if (resolved == IntPtr.Zero) return null;
        try
        {
            return Marshal.PtrToStringUTF8(resolved);
        }
        finally
        {
            free(resolved);
        }
    }

    /// <summary>Sends a signal to every process in process group <paramref name="processGroup"/>; false when none is left.</summary>
    public static bool KillProcessGroup(int processGroup, int signal) => processGroup > 1 && kill(-processGroup, signal) == 0;

    /// <summary>The process group of a process, or -1 when it is gone.</summary>
    public static int ProcessGroupOf(int pid) => getpgid(pid);

    /// <summary>geteuid(2).</summary>
    public static uint GetEffectiveUserId() => geteuid();

    [DllImport("libc")]
    private static extern uint geteuid();

    [DllImport("libc", SetLastError = true)]
    private static extern IntPtr realpath([MarshalAs(UnmanagedType.LPUTF8Str)] string path, IntPtr resolvedPath);

    [DllImport("libc")]
    private static extern void free(IntPtr pointer);

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    [DllImport("libc", SetLastError = true)]
    private static extern int getpgid(int pid);
}

namespace Sutazai.Data;

/// <summary>
/// Folders and files only the server's own account may read: the data dir and what is in it (database, keys, outbox,
/// documents, agent workspaces) are created 0700 / 0600, whatever the umask, so another local account learns nothing.
/// </summary>
public static class PrivateFiles
{
    public const UnixFileMode DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    public const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Creates <paramref name="path"/> (and missing parents) owner-only; an existing folder is left as it is.</summary>
    public static string CreateDirectory(string path)
    {
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(path);
        else Directory.CreateDirectory(path, DirectoryMode);
        return path;
    }

    /// <summary>Makes an existing file owner-only (no-op when it does not exist).</summary>
    public static void Restrict(string file)
    {
        if (!OperatingSystem.IsWindows() && File.Exists(file)) File.SetUnixFileMode(file, FileMode);
    }

    /// <summary>
    /// A new owner-only file under <paramref name="folder"/> (created owner-only if missing), open for reading and
    /// writing; with <paramref name="deleteOnClose"/> it disappears when the stream is closed.
    /// </summary>
    public static FileStream CreateScratch(string folder, string name, bool deleteOnClose = false)
    {
        var options = CreateOptions(System.IO.FileMode.CreateNew);
        options.Access = FileAccess.ReadWrite;
        if (deleteOnClose) options.Options = FileOptions.DeleteOnClose | FileOptions.Asynchronous;
        return new FileStream(Path.Combine(CreateDirectory(folder), name), options);
    }

    /// <summary>Options for creating a file owner-only from the start (no window where it is readable).</summary>
    public static FileStreamOptions CreateOptions(FileMode mode = System.IO.FileMode.CreateNew)
    {
        var options = new FileStreamOptions { Mode = mode, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = FileMode;
        return options;
    }
}

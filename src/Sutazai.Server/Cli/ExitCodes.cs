namespace Sutazai.Server.Cli;

/// <summary>What <c>sutazai</c> exits with (docs/cli.md), so scripts can tell a typo from a missing user.</summary>
public static class ExitCodes
{
    /// <summary>Done.</summary>
    public const int Ok = 0;

    /// <summary>The command ran and failed: a check failed, a download broke, the server answered with an error.</summary>
    public const int Failed = 1;

    /// <summary>The command line or the input was wrong: unknown command or option, missing value, weak password, bad configuration.</summary>
    public const int Usage = 2;

    /// <summary>What the command names does not exist: user, key, model, conversation, run.</summary>
    public const int NotFound = 3;

    /// <summary>No API key, or the server refused it (401/403).</summary>
    public const int Unauthorized = 4;

    /// <summary>The server or the database could not be reached.</summary>
    public const int Unavailable = 5;

    /// <summary>Stopped with Ctrl+C (128 + SIGINT, as shells report it).</summary>
    public const int Interrupted = 130;
}

/// <summary>A command's outcome other than success, with the one line the user reads on standard error.</summary>
public sealed class CliException(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

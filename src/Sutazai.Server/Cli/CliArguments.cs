namespace Sutazai.Server.Cli;

/// <summary>
/// Configuration on the command line (<c>--Sutazai:DataDir=/srv/ai</c>, <c>--Logging:LogLevel:Default Warning</c>)
/// is taken out before parsing: every command accepts it, as the server always has, and passes it to the
/// configuration exactly as ASP.NET Core's command-line provider reads it.
/// </summary>
public static class CliArguments
{
    public static (string[] CommandLine, string[] Settings) Split(IReadOnlyList<string> args)
    {
        var commandLine = new List<string>();
        var settings = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg == "--")
            {
                // Everything after `--` is the command's own (a prompt may start with dashes).
                commandLine.AddRange(args.Skip(i));
                break;
            }
            if (!IsSetting(arg))
            {
                commandLine.Add(arg);
                continue;
            }
            if (arg.Contains('=', StringComparison.Ordinal))
            {
                settings.Add(arg);
            }
            else if (i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                settings.Add(arg + "=" + args[i + 1]);
                i++;
            }
            else
            {
                settings.Add(arg + "=");
            }
        }
        return ([.. commandLine], [.. settings]);
    }

    /// <summary>A configuration key has a section (<c>Section:Key</c>); no command option has a colon in its name.</summary>
    private static bool IsSetting(string arg)
    {
        if (!arg.StartsWith("--", StringComparison.Ordinal) || arg.Length < 4) return false;
        var end = arg.IndexOf('=', StringComparison.Ordinal);
        var name = end < 0 ? arg[2..] : arg[2..end];
        return name.Length > 2 && name.Contains(':', StringComparison.Ordinal) && !name.StartsWith(':') && !name.EndsWith(':');
    }
}

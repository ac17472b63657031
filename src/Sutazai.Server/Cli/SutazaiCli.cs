using System.CommandLine;
using Microsoft.Extensions.Options;
using Sutazai.Server.Hosting;

namespace Sutazai.Server.Cli;

/// <summary>
/// The <c>sutazai</c> command line (docs/cli.md): the server (<c>serve</c>, the default), offline administration on
/// the configured database, and a terminal client of a running server. Parsed with System.CommandLine.
/// </summary>
public static class SutazaiCli
{
    public static async Task<int> RunAsync(string[] args, Func<string[], Task<int>> serve, CliConsole? console = null)
    {
        var (commandLine, settings) = CliArguments.Split(args);
        var context = new CliContext(settings, console ?? new CliConsole(), serve);
        var root = BuildRoot(context);
        // Response files (@file) are off: an argument of the server or a prompt may well start with '@'.
        var parse = root.Parse(commandLine, new ParserConfiguration { ResponseFileTokenReplacer = null });
        var invocation = new InvocationConfiguration
        {
            Output = context.Console.Out,
            Error = context.Console.Error,
            // The server keeps ASP.NET Core's graceful shutdown on SIGTERM, and the client commands handle Ctrl+C
            // themselves (chat stops the reply, not the program); neither wants the parser's 2-second kill.
            ProcessTerminationTimeout = null,
            // Failures of the server's start-up surface as they always have; the commands report their own.
            EnableDefaultExceptionHandler = false,
        };
        var code = await parse.InvokeAsync(invocation);
        return parse.Errors.Count > 0 ? ExitCodes.Usage : code;
    }

    public static RootCommand BuildRoot(CliContext context)
    {
        var root = new RootCommand("""
            SutazAI: a self-hosted AI assistant. With no command, starts the server (as `sutazai serve`).
            Settings: --Sutazai:Key=value on any command, environment Sutazai__Key, or appsettings.json (docs/configuration.md).
            """)
        {
            TreatUnmatchedTokensAsErrors = false,
        };
        ServeCommands.AddTo(root, context);
        ConfigCommands.AddTo(root, context);
        UserCommands.AddTo(root, context);
        KeyCommands.AddTo(root, context);
        ModelCommands.AddTo(root, context);
        DoctorCommand.AddTo(root, context);
        LoginCommands.AddTo(root, context);
        AskCommand.AddTo(root, context);
        ChatCommand.AddTo(root, context);
        RunCommand.AddTo(root, context);
        KnowledgeCommands.AddTo(root, context);
        return root;
    }

    /// <summary>
    /// The action of a command: runs it and turns its failures into an exit code and one line on standard error
    /// (a <see cref="CliException"/> says which code; invalid settings are a usage error; anything else fails).
    /// </summary>
    public static void Act(this Command command, CliContext context, Func<ParseResult, CancellationToken, Task<int>> action) =>
        command.SetAction(async (parse, ct) =>
        {
            try
            {
                return await action(parse, ct);
            }
            catch (CliException ex)
            {
                if (ex.Message.Length > 0) context.Console.Fail(ex.Message);
                return ex.ExitCode;
            }
            catch (OptionsValidationException ex)
            {
                foreach (var failure in ex.Failures) context.Console.Fail(failure);
                context.Console.Error.WriteLine("Fix the settings (sutazai config check lists every problem; docs/configuration.md).");
                return ExitCodes.Usage;
            }
            catch (OperationCanceledException)
            {
                return ExitCodes.Interrupted;
            }
        });

    /// <summary>The closest known names to a mistyped one (edit distance 2 at most, or a shared prefix).</summary>
    public static IReadOnlyList<string> Suggest(string typed, IEnumerable<string> known) =>
        known.Select(k => (Name: k, Distance: Distance(typed.ToLowerInvariant(), k.ToLowerInvariant())))
            .Where(c => c.Distance <= 2 || (typed.Length >= 3 && c.Name.StartsWith(typed, StringComparison.OrdinalIgnoreCase)))
            .OrderBy(c => c.Distance).ThenBy(c => c.Name, StringComparer.Ordinal).Select(c => c.Name).ToList();

    private static int Distance(string a, string b)
    {
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        for (var i = 1; i <= a.Length; i++)
        {
            var current = new int[b.Length + 1];
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            previous = current;
        }
        return previous[b.Length];
    }
}

/// <summary>What every command gets: the configuration settings from the command line, the console, and the server.</summary>
public sealed record CliContext(string[] Settings, CliConsole Console, Func<string[], Task<int>> Serve);

using System.CommandLine;
using Sutazai.Server.Configuration;
using Sutazai.Server.Data;
using Sutazai.Server.Hosting;

namespace Sutazai.Server.Cli;

/// <summary><c>sutazai serve</c> (also what <c>sutazai</c> alone does) and <c>sutazai migrate</c>.</summary>
public static class ServeCommands
{
    public static void AddTo(RootCommand root, CliContext context)
    {
        var rootRole = RoleOption();
        root.Options.Add(rootRole);
        root.SetAction(parse =>
        {
            // The root takes the host's own arguments (--urls …, --environment=…) unparsed, so a mistyped command
            // would otherwise start the server: a first word that is not an option is refused instead.
            if (parse.UnmatchedTokens.FirstOrDefault() is { } first && !first.StartsWith('-') && parse.Tokens.FirstOrDefault()?.Value == first)
                return Task.FromResult(UnknownCommand(root, first, context.Console));
            return context.Serve(HostArguments(parse, parse.GetValue(rootRole), context));
        });

        var role = RoleOption();
        var serve = new Command("serve", "Start the server: REST API, WebSockets, web UI and workers (the default command). Other arguments (--urls http://0.0.0.0:8080) go to ASP.NET Core.")
        {
            role,
        };
        serve.TreatUnmatchedTokensAsErrors = false;
        serve.SetAction(parse => context.Serve(HostArguments(parse, parse.GetValue(role), context)));
        root.Subcommands.Add(serve);

        var migrate = new Command("migrate", "Apply the pending database migrations and exit (for init containers and upgrades); whatever Sutazai:Role says.");
        migrate.Act(context, async (_, ct) =>
        {
            var builder = OfflineHost.CreateBuilder(context.Settings);
            builder.AddSutazaiSettings();
            builder.AddSutazaiDatabase();
            await using var app = builder.Build();
            IReadOnlyList<string> applied;
            try
            {
                applied = await DatabaseMigrator.MigrateAsync(app.Services, app.Services.GetRequiredService<ILogger<DatabaseMigrator>>(), ct);
            }
            catch (InvalidOperationException ex)
            {
                throw new CliException(ExitCodes.Unavailable, ex.Message);
            }
            context.Console.Line(applied.Count == 0
                ? "The database schema is up to date."
                : $"Applied {applied.Count} migration(s): {string.Join(", ", applied)}");
            return ExitCodes.Ok;
        });
        root.Subcommands.Add(migrate);
    }

    private static Option<string?> RoleOption()
    {
        var option = new Option<string?>("--role") { Description = "What this process does: all (API + workers), api (API only) or worker (queue consumers only). Sets Sutazai:Role." };
        option.AcceptOnlyFromAmong(ServerRole.All, ServerRole.Api, ServerRole.Worker);
        return option;
    }

    /// <summary>What the host is started with: its unparsed arguments, then the settings, then <c>--role</c> (which wins).</summary>
    private static string[] HostArguments(ParseResult parse, string? role, CliContext context) =>
        [.. parse.UnmatchedTokens, .. context.Settings, .. role is null ? [] : new[] { $"--Sutazai:Role={role}" }];

    private static int UnknownCommand(RootCommand root, string typed, CliConsole console)
    {
        var names = root.Subcommands.Select(c => c.Name).ToList();
        console.Fail($"'{typed}' is not a sutazai command.");
        var suggestions = SutazaiCli.Suggest(typed, names);
        if (suggestions.Count > 0) console.Error.WriteLine($"Did you mean: {string.Join(", ", suggestions.Take(3))}?");
        console.Error.WriteLine("Commands: " + string.Join(", ", names) + ". Run 'sutazai --help' for more.");
        return ExitCodes.Usage;
    }
}

using System.CommandLine;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using Sutazai.Server.Configuration;
using Sutazai.Server.Hosting;

namespace Sutazai.Server.Cli;

/// <summary><c>sutazai config list|docs|check</c>: the settings registry, and a dry run of the server's validation.</summary>
public static partial class ConfigCommands
{
    public static void AddTo(RootCommand root, CliContext context)
    {
        var config = new Command("config", "Settings: list them with their values, print their documentation, or check a configuration.");

        var json = new Option<bool>("--json") { Description = "Print JSON (key, value, default, environmentVariable, description)." };
        var list = new Command("list", "Every setting with the value in force (secrets masked) and its default.") { json };
        list.Act(context, (parse, _) =>
        {
            var configuration = Configuration(context.Settings);
            var rows = SettingsRegistry.All.Select(s => new SettingValue(s.Key, Mask(s.Key, configuration[s.Key]), s.Default, s.EnvironmentVariable, s.Description)).ToList();
            if (parse.GetValue(json)) context.Console.WriteJson(rows);
            else if (context.Console.Interactive) context.Console.Table(["SETTING", "VALUE", "DEFAULT"], rows.Select(r => new[] { r.Key, r.Value, r.Default }));
            else foreach (var r in rows) context.Console.Line($"{r.Key}={r.Value}");
            return Task.FromResult(ExitCodes.Ok);
        });
        config.Subcommands.Add(list);

        var docs = new Command("docs", "Print docs/configuration.md: every setting, its default and what it does.");
        docs.Act(context, (_, _) =>
        {
            context.Console.Out.Write(SettingsRegistry.ToMarkdown());
            return Task.FromResult(ExitCodes.Ok);
        });
        config.Subcommands.Add(docs);

        var check = new Command("check", "Validate the configuration as the server's start-up would, without starting it; also warns about Sutazai:* keys no setting has (typos).") { json };
        check.Act(context, (parse, _) =>
        {
            var builder = OfflineHost.CreateBuilder(context.Settings);
            builder.AddSutazaiServer();
            var unknown = UnknownKeys(builder.Configuration).ToList();
            var problems = new List<string>();
            try
            {
                using var app = builder.Build();
                app.Services.GetService<IStartupValidator>()?.Validate();
            }
            catch (OptionsValidationException ex)
            {
                problems.AddRange(ex.Failures);
            }
            catch (AggregateException ex)
            {
                problems.AddRange(ex.InnerExceptions.SelectMany(e => e is OptionsValidationException o ? o.Failures : [e.Message]));
            }
            if (parse.GetValue(json)) context.Console.WriteJson(new { valid = problems.Count == 0, problems, unknownKeys = unknown });
            else
            {
                foreach (var key in unknown) context.Console.Warn($"{key} is not a SutazAI setting (see sutazai config list).");
                foreach (var problem in problems) context.Console.Fail(problem);
                if (problems.Count == 0) context.Console.Line("The configuration is valid.");
            }
            return Task.FromResult(problems.Count == 0 ? ExitCodes.Ok : ExitCodes.Usage);
        });
        config.Subcommands.Add(check);
        root.Subcommands.Add(config);
    }

    private static IConfiguration Configuration(string[] settings)
    {
        var builder = OfflineHost.CreateBuilder(settings);
        builder.AddSutazaiSettings();
        return builder.Configuration;
    }

    /// <summary>Keys under Sutazai: that neither are a setting nor lie under one (lists such as Agents:ToolFamiliesByRole).</summary>
    private static IEnumerable<string> UnknownKeys(IConfiguration configuration)
    {
        var known = SettingsRegistry.All.Select(s => s.Key).ToList();
        foreach (var (key, value) in configuration.GetSection(SutazaiOptions.Section).AsEnumerable())
        {
            if (value is null) continue;
            if (known.Any(k => string.Equals(k, key, StringComparison.OrdinalIgnoreCase) || key.StartsWith(k + ":", StringComparison.OrdinalIgnoreCase))) continue;
            if (KeyedSections.Any(k => key.StartsWith(k + ":", StringComparison.OrdinalIgnoreCase))) continue;
            yield return key;
        }
    }

    // Sections whose child names are the user's own (a role name), not fixed settings.
    private static readonly string[] KeyedSections = ["Sutazai:Agents:ToolFamiliesByRole"];

    [GeneratedRegex("(?i)(password=)[^;,]*")]
    private static partial Regex PasswordPair();

    [GeneratedRegex("(://[^:/@]+:)[^@/]+@")]
    private static partial Regex UrlCredentials();

    /// <summary>Keeps secrets off the screen: passwords and keys, and the password part of connection strings and URLs.</summary>
    public static string? Mask(string key, string? value)
    {
        if (string.IsNullOrEmpty(value)) return value;
        if (key.EndsWith("Password", StringComparison.OrdinalIgnoreCase) || key.EndsWith("ApiKey", StringComparison.OrdinalIgnoreCase) || key.EndsWith("Token", StringComparison.OrdinalIgnoreCase)
            || key.EndsWith("SigningKey", StringComparison.OrdinalIgnoreCase)) return "***";
        return UrlCredentials().Replace(PasswordPair().Replace(value, "$1***"), "$1***@");
    }

    public sealed record SettingValue(string Key, string? Value, string? Default, string EnvironmentVariable, string Description);
}

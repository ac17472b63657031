using System.CommandLine;
using System.Text.Json;
using Spectre.Console;

namespace Sutazai.Server.Cli;

/// <summary><c>sutazai login</c> / <c>logout</c>: an API key for the client commands, kept in the user's config folder.</summary>
public static class LoginCommands
{
    public static void AddTo(RootCommand root, CliContext context)
    {
        var credentials = new Credentials();
        var username = new Option<string?>("--username", "-u") { Description = "Sign in with this account's password and make an API key for this machine." };
        var password = new Option<string?>("--password", "-p") { Description = "The password (asked for when not given)." };
        var login = new Command("login", "Store an API key for a server (given with --api-key, typed, or made by signing in with --username). Checked before it is stored.") { username, password };
        credentials.AddTo(login);
        login.Act(context, async (parse, ct) =>
        {
            var url = credentials.ResolveUrl(parse);
            var key = parse.GetValue(credentials.ApiKey) ?? Environment.GetEnvironmentVariable(Credentials.KeyVariable);
            if (key is null && parse.GetValue(username) is { } name)
                key = await MintKeyAsync(url, name, parse.GetValue(password) ?? context.Console.ReadSecret("Password", confirm: false), ct);
            key ??= CliConsole.InputIsTerminal
                ? AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) }).Prompt(new TextPrompt<string>("API key (sk-sz-…):").Secret())
                : Console.In.ReadLine()?.Trim();
            if (string.IsNullOrEmpty(key)) throw new CliException(ExitCodes.Usage, "No API key given.");
            using var client = new ServerClient(url, key);
            var me = await client.GetAsync("api/v1/users/me", ct);
            var who = me.GetProperty("username").GetString();
            Credentials.Save(new StoredLogin(url.ToString(), key, who));
            context.Console.Line($"Signed in to {url} as {who}; the key is stored in {Credentials.FilePath}.");
            return ExitCodes.Ok;
        });
        root.Subcommands.Add(login);

        var logout = new Command("logout", "Forget the stored API key (it stays valid on the server: revoke it there, or with sutazai keys revoke).");
        logout.Act(context, (_, _) =>
        {
            context.Console.Line(Credentials.Forget() ? $"Removed {Credentials.FilePath}." : "No stored login.");
            return Task.FromResult(ExitCodes.Ok);
        });
        root.Subcommands.Add(logout);
    }

    /// <summary>Signs in with the password (an interactive sign-in may create keys) and makes a key for this machine.</summary>
    private static async Task<string> MintKeyAsync(Uri url, string username, string password, CancellationToken ct)
    {
        using var anonymous = new ServerClient(url, null);
        var tokens = await anonymous.PostAsync("api/v1/auth/login", new { login = username, password }, ct);
        using var signedIn = new ServerClient(url, tokens.GetProperty("accessToken").GetString()!);
        var created = await signedIn.PostAsync("api/v1/keys", new
        {
            name = $"sutazai cli on {Environment.MachineName}",
            scopes = new[] { "inference", "chat", "knowledge", "agents" },
        }, ct);
        return created.GetProperty("key").GetString() ?? throw new JsonException("The server answered without a key.");
    }
}

using System.CommandLine;
using Microsoft.AspNetCore.Identity;
using Sutazai.Data.Entities;
using Sutazai.Server.Identity;

namespace Sutazai.Server.Cli;

/// <summary>
/// <c>sutazai users …</c>: account administration on the configured database without a running server — the way back
/// in for a locked-out administrator. Every change goes through the services the admin API uses.
/// </summary>
public static class UserCommands
{
    public static void AddTo(RootCommand root, CliContext context)
    {
        var users = new Command("users", "Accounts on the configured database, without a running server: list, create, set a password, unlock, deactivate.");

        var json = JsonOption();
        var list = new Command("list", "Every account, oldest first.") { json };
        list.Act(context, async (parse, ct) =>
        {
            await using var host = await OfflineHost.StartAsync(context.Settings, withInference: false, ct, readOnly: true);
            await using var scope = host.Services.CreateAsyncScope();
            var manager = scope.ServiceProvider.GetRequiredService<UserManager<AppUser>>();
            var (items, _) = await scope.ServiceProvider.GetRequiredService<UserAdministration>().ListAsync(1, 500, ct);
            var now = DateTimeOffset.UtcNow;
            var rows = items.Select(u => UserRow.From(u, now)).ToList();
            if (parse.GetValue(json)) context.Console.WriteJson(rows);
            else context.Console.Table(["USERNAME", "EMAIL", "ROLE", "ACTIVE", "LOCKED UNTIL", "LAST SIGN-IN", "ID"],
                rows.Select(r => new[] { r.Username, r.Email, r.Role, r.IsActive ? "yes" : "no", CliConsole.Time(r.LockedOutUntil), CliConsole.Time(r.LastLoginAt), r.Id.ToString() }));
            return ExitCodes.Ok;
        });
        users.Subcommands.Add(list);

        var username = new Option<string>("--username", "-u") { Description = "Username: 3-32 letters, digits, '.', '_' or '-'.", Required = true };
        var email = new Option<string>("--email", "-e") { Description = "E-mail address.", Required = true };
        var password = PasswordOption();
        var admin = new Option<bool>("--admin") { Description = "Make the account an administrator (the first account always is)." };
        var createJson = JsonOption();
        var create = new Command("create", "Create an account (the same rules as registering in the web UI).") { username, email, password, admin, createJson };
        create.Act(context, async (parse, ct) =>
        {
            var secret = parse.GetValue(password) ?? context.Console.ReadSecret("Password", confirm: true);
            await using var host = await OfflineHost.StartAsync(context.Settings, withInference: false, ct);
            await using var scope = host.Services.CreateAsyncScope();
            var accounts = scope.ServiceProvider.GetRequiredService<AccountService>();
            var result = await accounts.RegisterAsync(new RegisterRequest(parse.GetValue(email), parse.GetValue(username), secret, null), ct);
            AppUser user;
            switch (result)
            {
                case RegisterResult.Created created:
                    user = created.User;
                    break;
                case RegisterResult.Invalid invalid:
                    foreach (var (field, messages) in invalid.Errors)
                        foreach (var message in messages) context.Console.Fail($"{field}: {message}");
                    return ExitCodes.Usage;
                case RegisterResult.Conflict conflict:
                    throw new CliException(ExitCodes.Failed, conflict.Detail);
                default:
                    throw new CliException(ExitCodes.Failed, "The account was not created.");
            }
            if (parse.GetValue(admin) && user.Role != Roles.Admin
                && await scope.ServiceProvider.GetRequiredService<UserAdministration>().UpdateAsync(user.Id, new AdminUpdateUserRequest(Roles.Admin, null), ct) is AccountUpdate.Updated promoted)
                user = promoted.User;
            if (parse.GetValue(createJson)) context.Console.WriteJson(UserRow.From(user, DateTimeOffset.UtcNow));
            else context.Console.Line($"Created {user.Role} '{user.UserName}' ({user.Id}).");
            return ExitCodes.Ok;
        });
        users.Subcommands.Add(create);

        var (setUser, setUserOption) = UserArgument();
        var setPassword = PasswordOption();
        var set = new Command("set-password", "Set an account's password, as a reset would: clears its lockout and revokes its sessions and API keys.") { setUser, setUserOption, setPassword };
        set.Act(context, async (parse, ct) =>
        {
            var who = Who(parse, setUser, setUserOption);
            var secret = parse.GetValue(setPassword) ?? context.Console.ReadSecret("New password", confirm: true);
            await using var host = await OfflineHost.StartAsync(context.Settings, withInference: false, ct);
            await using var scope = host.Services.CreateAsyncScope();
            var user = await FindAsync(scope.ServiceProvider, who, ct);
            var (changed, errors) = await scope.ServiceProvider.GetRequiredService<AccountService>().SetPasswordAsync(user.Id, secret, ct);
            if (errors.Count > 0)
            {
                foreach (var error in errors) context.Console.Fail("password: " + error);
                return ExitCodes.Usage;
            }
            if (changed is null) throw new CliException(ExitCodes.Failed, "The password was not changed.");
            context.Console.Line($"Password of '{changed.UserName}' set; its lockout is cleared and its sessions and API keys are revoked.");
            return ExitCodes.Ok;
        });
        users.Subcommands.Add(set);

        var (unlockUser, unlockUserOption) = UserArgument();
        var unlock = new Command("unlock", "End an account's lockout after too many wrong passwords.") { unlockUser, unlockUserOption };
        unlock.Act(context, async (parse, ct) =>
        {
            var who = Who(parse, unlockUser, unlockUserOption);
            await using var host = await OfflineHost.StartAsync(context.Settings, withInference: false, ct);
            await using var scope = host.Services.CreateAsyncScope();
            var user = await FindAsync(scope.ServiceProvider, who, ct);
            await scope.ServiceProvider.GetRequiredService<UserAdministration>().UnlockAsync(user.Id);
            context.Console.Line($"'{user.UserName}' is unlocked.");
            return ExitCodes.Ok;
        });
        users.Subcommands.Add(unlock);

        users.Subcommands.Add(Activation(context, "deactivate", "Deactivate an account: it cannot sign in, and its sessions end at once (one active admin always remains).", active: false));
        users.Subcommands.Add(Activation(context, "activate", "Let a deactivated account sign in again.", active: true));
        root.Subcommands.Add(users);
    }

    private static Command Activation(CliContext context, string name, string description, bool active)
    {
        var (user, userOption) = UserArgument();
        var command = new Command(name, description) { user, userOption };
        command.Act(context, async (parse, ct) =>
        {
            var who = Who(parse, user, userOption);
            await using var host = await OfflineHost.StartAsync(context.Settings, withInference: false, ct);
            await using var scope = host.Services.CreateAsyncScope();
            var found = await FindAsync(scope.ServiceProvider, who, ct);
            return await scope.ServiceProvider.GetRequiredService<UserAdministration>().UpdateAsync(found.Id, new AdminUpdateUserRequest(null, active), ct) switch
            {
                AccountUpdate.Updated u => Done(context, $"'{u.User.UserName}' is {(active ? "active" : "deactivated")}."),
                AccountUpdate.Conflict c => throw new CliException(ExitCodes.Failed, c.Detail),
                _ => throw new CliException(ExitCodes.NotFound, $"No account '{who}'."),
            };
        });
        return command;
    }

    private static int Done(CliContext context, string message)
    {
        context.Console.Line(message);
        return ExitCodes.Ok;
    }

    public static Option<bool> JsonOption() => new("--json") { Description = "Print JSON instead of a table." };

    private static Option<string?> PasswordOption() =>
        new("--password", "-p") { Description = "The password. Without it: asked for on a terminal (twice), or read from the first line of standard input." };

    /// <summary>The account a command acts on: <c>sutazai users unlock alice</c> or <c>--username alice</c>.</summary>
    private static (Argument<string?> Argument, Option<string?> Option) UserArgument() =>
        (new Argument<string?>("user") { Description = "Username, e-mail address or id.", Arity = ArgumentArity.ZeroOrOne },
         new Option<string?>("--username", "-u") { Description = "The same as the user argument." });

    private static string Who(ParseResult parse, Argument<string?> argument, Option<string?> option) =>
        parse.GetValue(argument) ?? parse.GetValue(option) ?? throw new CliException(ExitCodes.Usage, "Name the account: a username, e-mail address or id.");

    private static async Task<AppUser> FindAsync(IServiceProvider services, string who, CancellationToken ct) =>
        await services.GetRequiredService<UserAdministration>().FindAsync(who, ct)
        ?? throw new CliException(ExitCodes.NotFound, $"No account '{who}'.");

    public sealed record UserRow(Guid Id, string Username, string Email, string Role, bool IsActive, bool IsVerified, DateTime? LockedOutUntil, int FailedAttempts, DateTime CreatedAt, DateTime? LastLoginAt)
    {
        public static UserRow From(AppUser u, DateTimeOffset now) =>
            new(u.Id, u.UserName ?? "", u.Email ?? "", u.Role, u.IsActive, u.EmailConfirmed,
                u.LockoutEnd is { } end && end > now ? end.UtcDateTime : null, u.AccessFailedCount, u.CreatedAt, u.LastLoginAt);
    }
}

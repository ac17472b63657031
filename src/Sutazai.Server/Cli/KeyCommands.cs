using System.CommandLine;
using Sutazai.Data.Entities;
using Sutazai.Server.Identity;

namespace Sutazai.Server.Cli;

/// <summary><c>sutazai keys list|create|revoke</c>: API keys of any account, on the configured database.</summary>
public static class KeyCommands
{
    public static void AddTo(RootCommand root, CliContext context)
    {
        var keys = new Command("keys", "API keys on the configured database, without a running server: list, create, revoke.");

        var listUser = new Option<string?>("--user", "-u") { Description = "Only this account's keys (username, e-mail or id)." };
        var json = UserCommands.JsonOption();
        var list = new Command("list", "API keys, newest first (revoked ones included); never the keys themselves.") { listUser, json };
        list.Act(context, async (parse, ct) =>
        {
            await using var host = await OfflineHost.StartAsync(context.Settings, withInference: false, ct, readOnly: true);
            await using var scope = host.Services.CreateAsyncScope();
            var admin = scope.ServiceProvider.GetRequiredService<UserAdministration>();
            Guid? owner = null;
            if (parse.GetValue(listUser) is { } who)
                owner = (await admin.FindAsync(who, ct) ?? throw new CliException(ExitCodes.NotFound, $"No account '{who}'.")).Id;
            var found = await scope.ServiceProvider.GetRequiredService<ApiKeyService>().ListAllAsync(owner, ct);
            var (users, _) = await admin.ListAsync(1, 500, ct);
            var names = users.ToDictionary(u => u.Id, u => u.UserName ?? "");
            var rows = found.Select(k => KeyRow.From(k, names.GetValueOrDefault(k.UserId))).ToList();
            if (parse.GetValue(json)) context.Console.WriteJson(rows);
            else context.Console.Table(["PREFIX", "NAME", "USER", "SCOPES", "CREATED", "LAST USED", "REVOKED", "ID"],
                rows.Select(r => new[] { r.Prefix, r.Name, r.Username, string.Join(",", r.Scopes), CliConsole.Time(r.CreatedAt), CliConsole.Time(r.LastUsedAt), CliConsole.Time(r.RevokedAt), r.Id.ToString() }));
            return ExitCodes.Ok;
        });
        keys.Subcommands.Add(list);

        var createUser = new Option<string>("--user", "-u") { Description = "The account the key acts as (username, e-mail or id).", Required = true };
        var name = new Option<string>("--name", "-n") { Description = "What the key is for.", DefaultValueFactory = _ => "sutazai-cli" };
        var scopes = new Option<string[]>("--scope", "-s") { Description = $"A scope ({string.Join(", ", ApiScopes.All)}); repeat for several. Default: {string.Join(", ", ApiScopes.Default)}.", AllowMultipleArgumentsPerToken = true };
        var createJson = UserCommands.JsonOption();
        var create = new Command("create", "Create an API key for an account and print it (shown this once).") { createUser, name, scopes, createJson };
        create.Act(context, async (parse, ct) =>
        {
            await using var host = await OfflineHost.StartAsync(context.Settings, withInference: false, ct);
            await using var scope = host.Services.CreateAsyncScope();
            var who = parse.GetRequiredValue(createUser);
            var user = await scope.ServiceProvider.GetRequiredService<UserAdministration>().FindAsync(who, ct)
                ?? throw new CliException(ExitCodes.NotFound, $"No account '{who}'.");
            var asked = parse.GetValue(scopes);
            var result = await scope.ServiceProvider.GetRequiredService<ApiKeyService>().CreateAsync(user.Id, parse.GetValue(name), null, asked is { Length: > 0 } ? asked : null, ct);
            switch (result)
            {
                case ApiKeyCreation.Created created:
                    if (parse.GetValue(createJson)) context.Console.WriteJson(new { key = created.Key, entry = KeyRow.From(created.Entity, user.UserName) });
                    else context.Console.Line(created.Key);
                    return ExitCodes.Ok;
                case ApiKeyCreation.Invalid invalid:
                    foreach (var (field, messages) in invalid.Errors)
                        foreach (var message in messages) context.Console.Fail($"{field}: {message}");
                    return ExitCodes.Usage;
                case ApiKeyCreation.Forbidden forbidden:
                    throw new CliException(ExitCodes.Usage, forbidden.Detail);
                default:
                    throw new CliException(ExitCodes.Failed, "The key was not created.");
            }
        });
        keys.Subcommands.Add(create);

        var key = new Argument<string>("key") { Description = "The key's id, its prefix as listed (sk-sz-AbCdEf), or the key itself." };
        var revoke = new Command("revoke", "Revoke an API key: it stops working at the next request.") { key };
        revoke.Act(context, async (parse, ct) =>
        {
            await using var host = await OfflineHost.StartAsync(context.Settings, withInference: false, ct);
            await using var scope = host.Services.CreateAsyncScope();
            var service = scope.ServiceProvider.GetRequiredService<ApiKeyService>();
            var which = parse.GetRequiredValue(key);
            var found = await service.FindAsync(which, ct);
            if (found.Count == 0) throw new CliException(ExitCodes.NotFound, $"No API key '{which}'.");
            if (found.Count > 1) throw new CliException(ExitCodes.Usage, $"'{which}' matches {found.Count} keys; give more of the prefix, or the id (sutazai keys list).");
            await service.RevokeAsync(found[0].UserId, found[0].Id, ct);
            context.Console.Line($"Revoked {found[0].Prefix}… ('{found[0].Name}').");
            return ExitCodes.Ok;
        });
        keys.Subcommands.Add(revoke);
        root.Subcommands.Add(keys);
    }

    public sealed record KeyRow(Guid Id, Guid UserId, string? Username, string Name, string Prefix, IReadOnlyList<string> Scopes, DateTime CreatedAt, DateTime? ExpiresAt, DateTime? LastUsedAt, DateTime? RevokedAt)
    {
        public static KeyRow From(ApiKey k, string? username) =>
            new(k.Id, k.UserId, username, k.Name, k.Prefix, ApiScopes.Split(k.Scopes), k.CreatedAt, k.ExpiresAt, k.LastUsedAt, k.RevokedAt);
    }
}

using System.Net;
using System.Net.Http.Json;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Cli;

/// <summary>The offline admin commands, run as the real program on a data folder of their own.</summary>
public sealed class AdminCommandTests : IDisposable
{
    private const string Password = Accounts.Password;
    private const string NewPassword = "Orchid!Lantern42Sky";

    private readonly string _dataDir = Directory.CreateTempSubdirectory("sutazai-cli-").FullName;
    private readonly SutazaiProcess _cli;

    public AdminCommandTests() => _cli = new SutazaiProcess(_dataDir);

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dataDir, recursive: true);
        }
        catch (IOException)
        {
            // a SQLite file may still be closing; the OS temp cleaner takes what is left
        }
    }

    private async Task<CliResult> CreateAsync(string username, params string[] more)
    {
        var result = await _cli.RunAsync(["users", "create", "--username", username, "--email", $"{username}@example.test", "--password", Password, .. more]);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result;
    }

    [Fact]
    public async Task UnknownCommand_ExitsTwo_AndSuggestsTheClosest()
    {
        var result = await _cli.RunAsync("modles");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("'modles' is not a sutazai command.", result.Error);
        Assert.Contains("Did you mean: models?", result.Error);
        Assert.Equal("", result.Output);
    }

    [Fact]
    public async Task UnknownSubcommand_ExitsTwo_AndSuggestsTheClosest()
    {
        var result = await _cli.RunAsync("users", "lst");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("Required command was not provided.", result.Error);
        // System.CommandLine's suggestion, printed with the command's help.
        Assert.Contains("'lst' was not matched. Did you mean one of the following?\nlist\n", result.Output);
    }

    [Fact]
    public async Task Help_OnEveryCommand_ExitsZero()
    {
        var root = await _cli.RunAsync("--help");
        Assert.Equal(0, root.ExitCode);
        foreach (var command in new[] { "serve", "migrate", "config", "users", "keys", "models", "doctor" })
            Assert.Contains("  " + command + " ", root.Output);
        var create = await _cli.RunAsync("users", "create", "--help");
        Assert.Equal(0, create.ExitCode);
        Assert.Contains("--username", create.Output);
        Assert.Contains("--admin", create.Output);
    }

    [Fact]
    public async Task Migrate_AppliesTheSchemaOnce()
    {
        var first = await _cli.RunAsync("migrate");
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.StartsWith("Applied ", first.Output);
        Assert.Contains("_Initial", first.Output);
        var second = await _cli.RunAsync("migrate");
        Assert.Equal(0, second.ExitCode);
        Assert.Equal("The database schema is up to date.\n", second.Output);
    }

    [Fact]
    public async Task ReadOnlyCommands_NeverCreateOrMigrateTheDatabase()
    {
        var database = Path.Combine(_cli.DataDir, "sutazai.db");
        foreach (var command in new[] { new[] { "users", "list" }, ["keys", "list"], ["models", "list", "--json"] })
        {
            var refused = await _cli.RunAsync(command);
            Assert.True(refused.ExitCode == 5, refused.ToString());
            Assert.Equal("error: There is no database yet, so there is nothing to read. Run `sutazai migrate` or start the server first.\n", refused.Error);
            Assert.False(File.Exists(database), string.Join(' ', command) + " created the database");
        }

        Assert.Equal(0, (await _cli.RunAsync("migrate")).ExitCode);
        var listed = await _cli.RunAsync("users", "list", "--json");
        Assert.True(listed.ExitCode == 0, listed.ToString());
        Assert.Empty(listed.Json.EnumerateArray());
    }

    [Fact]
    public async Task UsersCreate_FirstIsAdmin_SecondAdminOnlyWithFlag_ListedAsJson()
    {
        var first = (await CreateAsync("alice", "--json")).Json;
        Assert.Equal("alice", first.GetProperty("username").GetString());
        Assert.Equal("admin", first.GetProperty("role").GetString());
        await CreateAsync("bob");
        await CreateAsync("carol", "--admin");

        var list = await _cli.RunAsync("users", "list", "--json");
        Assert.Equal(0, list.ExitCode);
        var users = list.Json.EnumerateArray().ToList();
        Assert.Equal(["alice", "bob", "carol"], users.Select(u => u.GetProperty("username").GetString()));
        Assert.Equal(["admin", "user", "admin"], users.Select(u => u.GetProperty("role").GetString()));
        Assert.All(users, u => Assert.True(u.GetProperty("isActive").GetBoolean()));
        Assert.Equal("bob@example.test", users[1].GetProperty("email").GetString());
        Assert.Equal(first.GetProperty("id").GetGuid(), users[0].GetProperty("id").GetGuid());

        var plain = await _cli.RunAsync("users", "list");
        Assert.Equal(0, plain.ExitCode);
        var lines = plain.Output.TrimEnd('\n').Split('\n');
        Assert.Equal(4, lines.Length);
        Assert.Matches(@"^USERNAME\s+EMAIL\s+ROLE\s+ACTIVE", lines[0]);
        Assert.Matches(@"^bob\s+bob@example\.test\s+user\s+yes\s", lines[2]);
    }

    [Fact]
    public async Task UsersCreate_BadInput_ExitsTwo_DuplicateExitsOne_StoresNothing()
    {
        var weak = await _cli.RunAsync("users", "create", "-u", "dave", "-e", "dave@example.test", "-p", "password1");
        Assert.Equal(2, weak.ExitCode);
        Assert.Contains("error: password:", weak.Error);
        var badName = await _cli.RunAsync("users", "create", "-u", "d!", "-e", "not-an-address", "-p", Password);
        Assert.Equal(2, badName.ExitCode);
        Assert.Contains("error: email: Email is not a valid address.", badName.Error);
        Assert.Contains("error: username:", badName.Error);
        await CreateAsync("dave");
        var again = await _cli.RunAsync("users", "create", "-u", "dave", "-e", "other@example.test", "-p", Password);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("That username is already taken.", again.Error);
        Assert.Single((await _cli.RunAsync("users", "list", "--json")).Json.EnumerateArray());
    }

    [Fact]
    public async Task UsersCreate_ReadsThePasswordFromStandardInput()
    {
        var result = await _cli.RunAsync(["users", "create", "-u", "erin", "-e", "erin@example.test"], stdin: Password + "\n");
        Assert.True(result.ExitCode == 0, result.ToString());
        await using var app = TestApp.Create(DbProvider.Sqlite, dataDir: _dataDir);
        using var client = app.Client();
        await Accounts.LoginAsync(client, "erin");
    }

    [Fact]
    public async Task SetPassword_LetsALockedOutAdminSignInAgain()
    {
        await CreateAsync("root");
        await using (var app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?> { ["Sutazai:Auth:MaxFailedAttempts"] = "3" }, dataDir: _dataDir))
        {
            using var client = app.Client();
            for (var i = 0; i < 3; i++)
                Assert.Equal(HttpStatusCode.Unauthorized, (await client.PostAsJsonAsync("/api/v1/auth/login", new { login = "root", password = "Wrong#Guess1x" })).StatusCode);
            // Locked: even the right password is refused now.
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.PostAsJsonAsync("/api/v1/auth/login", new { login = "root", password = Password })).StatusCode);

            var locked = (await _cli.RunAsync("users", "list", "--json")).Json[0];
            Assert.NotEqual(System.Text.Json.JsonValueKind.Null, locked.GetProperty("lockedOutUntil").ValueKind);

            var set = await _cli.RunAsync(["users", "set-password", "root"], stdin: NewPassword + "\n");
            Assert.True(set.ExitCode == 0, set.ToString());
            Assert.Equal("Password of 'root' set; its lockout is cleared and its sessions and API keys are revoked.\n", set.Output);

            Assert.Equal(HttpStatusCode.Unauthorized, (await client.PostAsJsonAsync("/api/v1/auth/login", new { login = "root", password = Password })).StatusCode);
            var tokens = await Accounts.LoginAsync(client, "root", NewPassword);
            using var admin = app.Client(tokens.AccessToken);
            Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/api/v1/admin/users")).StatusCode);
        }
        var after = (await _cli.RunAsync("users", "list", "--json")).Json[0];
        Assert.Equal(System.Text.Json.JsonValueKind.Null, after.GetProperty("lockedOutUntil").ValueKind);
        Assert.Equal(0, after.GetProperty("failedAttempts").GetInt32());
    }

    [Fact]
    public async Task SetPassword_WeakPassword_ExitsTwo_UnknownUser_ExitsThree()
    {
        await CreateAsync("frank");
        var weak = await _cli.RunAsync("users", "set-password", "frank", "--password", "short");
        Assert.Equal(2, weak.ExitCode);
        Assert.Contains("error: password: Passwords must be at least 8 characters.", weak.Error);
        var nobody = await _cli.RunAsync("users", "set-password", "--username", "nobody", "--password", NewPassword);
        Assert.Equal(3, nobody.ExitCode);
        Assert.Equal("error: No account 'nobody'.\n", nobody.Error);
        var unnamed = await _cli.RunAsync("users", "unlock");
        Assert.Equal(2, unnamed.ExitCode);
    }

    [Fact]
    public async Task Deactivate_KeepsTheLastAdmin_AndEndsOthers()
    {
        await CreateAsync("gina");
        await CreateAsync("hank");
        var last = await _cli.RunAsync("users", "deactivate", "gina");
        Assert.Equal(1, last.ExitCode);
        Assert.Equal("error: At least one active admin must remain.\n", last.Error);
        var hank = await _cli.RunAsync("users", "deactivate", "hank@example.test");
        Assert.Equal(0, hank.ExitCode);
        Assert.Equal("'hank' is deactivated.\n", hank.Output);
        var users = (await _cli.RunAsync("users", "list", "--json")).Json;
        Assert.True(users[0].GetProperty("isActive").GetBoolean());
        Assert.False(users[1].GetProperty("isActive").GetBoolean());
        Assert.Equal(0, (await _cli.RunAsync("users", "activate", "hank")).ExitCode);
        Assert.True((await _cli.RunAsync("users", "list", "--json")).Json[1].GetProperty("isActive").GetBoolean());
    }

    [Fact]
    public async Task Keys_CreateListRevoke_TheServerHonoursIt()
    {
        await CreateAsync("ivy");
        var created = await _cli.RunAsync("keys", "create", "--user", "ivy", "--name", "laptop", "--json");
        Assert.True(created.ExitCode == 0, created.ToString());
        var key = created.Json.GetProperty("key").GetString()!;
        Assert.StartsWith("sk-sz-", key);
        Assert.Equal(["inference", "chat", "knowledge"], created.Json.GetProperty("entry").GetProperty("scopes").EnumerateArray().Select(s => s.GetString()));

        var listed = (await _cli.RunAsync("keys", "list", "--json")).Json.EnumerateArray().Single();
        Assert.Equal("laptop", listed.GetProperty("name").GetString());
        Assert.Equal("ivy", listed.GetProperty("username").GetString());
        Assert.Equal(key[..12], listed.GetProperty("prefix").GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, listed.GetProperty("revokedAt").ValueKind);

        await using (var app = TestApp.Create(DbProvider.Sqlite, dataDir: _dataDir))
        {
            using var client = app.Client(key);
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/v1/users/me")).StatusCode);
            var revoked = await _cli.RunAsync("keys", "revoke", key[..12]);
            Assert.True(revoked.ExitCode == 0, revoked.ToString());
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/api/v1/users/me")).StatusCode);
        }
        Assert.NotEqual(System.Text.Json.JsonValueKind.Null, (await _cli.RunAsync("keys", "list", "--json")).Json[0].GetProperty("revokedAt").ValueKind);
        Assert.Equal(3, (await _cli.RunAsync("keys", "revoke", "sk-sz-nothing")).ExitCode);
        Assert.Equal(2, (await _cli.RunAsync("keys", "create", "--user", "ivy", "--scope", "root")).ExitCode);
    }

    [Fact]
    public async Task ConfigCheck_NamesEveryInvalidSetting_AndWarnsAboutTypos()
    {
        var valid = await _cli.RunAsync("config", "check", "--Sutazai:Databse:Provider=sqlite");
        Assert.True(valid.ExitCode == 0, valid.ToString());
        Assert.Equal("The configuration is valid.\n", valid.Output);
        Assert.Contains("warning: Sutazai:Databse:Provider is not a SutazAI setting", valid.Error);

        var invalid = await _cli.RunAsync("config", "check", "--json", "--Sutazai:Database:Provider=mysql", "--Sutazai:Role", "everything");
        Assert.Equal(2, invalid.ExitCode);
        var report = invalid.Json;
        Assert.False(report.GetProperty("valid").GetBoolean());
        var problems = report.GetProperty("problems").EnumerateArray().Select(p => p.GetString()!).ToList();
        Assert.Contains(problems, p => p.Contains("Sutazai:Database:Provider must be 'sqlite' or 'postgres', not 'mysql'.", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("Sutazai:Role must be 'all', 'api' or 'worker'.", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ConfigList_ShowsTheValueInForce_WithSecretsMasked()
    {
        var list = await _cli.RunAsync("config", "list", "--json", "--Sutazai:Inference:OpenAI:ApiKey=sk-secret", "--Sutazai:Tasks:RabbitMq:Url=amqp://u:hunter2@mq:5672/");
        Assert.Equal(0, list.ExitCode);
        var settings = list.Json.EnumerateArray().ToDictionary(s => s.GetProperty("key").GetString()!);
        Assert.Equal(_dataDir, settings["Sutazai:DataDir"].GetProperty("value").GetString());
        Assert.Equal("./data", settings["Sutazai:DataDir"].GetProperty("default").GetString());
        Assert.Equal("***", settings["Sutazai:Inference:OpenAI:ApiKey"].GetProperty("value").GetString());
        Assert.Equal("amqp://u:***@mq:5672/", settings["Sutazai:Tasks:RabbitMq:Url"].GetProperty("value").GetString());
        var plain = await _cli.RunAsync("config", "list");
        Assert.Contains("Sutazai:Role=all\n", plain.Output);
    }

    [Fact]
    public async Task Doctor_ReportsEachCheck()
    {
        var fresh = await _cli.RunAsync("doctor", "--json");
        var before = fresh.Json.EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!);
        Assert.Equal("warn", before["database"].GetProperty("status").GetString()); // a new install: no database file yet
        Assert.StartsWith("no database file yet at ", before["database"].GetProperty("detail").GetString());

        Assert.Equal(0, (await _cli.RunAsync("migrate")).ExitCode);
        var result = await _cli.RunAsync("doctor", "--json");
        var checks = result.Json.EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!, c => c.GetProperty("status").GetString());
        Assert.Equal("ok", checks["data-folder"]);
        Assert.Equal("ok", checks["database"]);
        Assert.Equal("ok", checks["schema"]);
        Assert.Equal("ok", checks["llama-cpp"]);
        Assert.Equal("warn", checks["inference"]); // no model yet
        Assert.Contains("sandbox", checks.Keys);
        Assert.Contains("disk-space", checks.Keys);
        Assert.Equal(checks.ContainsValue("fail") ? 1 : 0, result.ExitCode);
    }
}

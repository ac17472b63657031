using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using Sutazai.Data;
using Sutazai.Server.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Server.Data;
using Sutazai.Server.Identity;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Platform;

/// <summary>Cross-cutting behaviour: health, metrics, headers, errors, OpenAPI, settings and migrations.</summary>
public sealed class PlatformTests(SqliteAppFixture fixture) : IClassFixture<SqliteAppFixture>
{
    private TestApp App => fixture.App;

    [Fact]
    public async Task Health_Liveness_Returns200Healthy()
    {
        using var client = App.Client();
        var response = await client.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("healthy", (await response.ReadJsonAsync()).GetProperty("status").GetString());
    }

    [Fact]
    public async Task Health_Ready_ReportsDatabase_AndNoModelYetAsDegraded()
    {
        using var client = App.Client();
        var response = await client.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.ReadJsonAsync();
        Assert.Equal("degraded", body.GetProperty("status").GetString());
        Assert.Equal("healthy", body.GetProperty("checks").GetProperty("database").GetProperty("status").GetString());
        Assert.Equal("degraded", body.GetProperty("checks").GetProperty("inference").GetProperty("status").GetString());
    }

    [Fact]
    public async Task RequestId_IsEchoed_OrGenerated_AndUnsafeOnesReplaced()
    {
        using var client = App.Client();
        var request = new HttpRequestMessage(HttpMethod.Get, "/health");
        request.Headers.Add("X-Request-ID", "abc-123");
        var echoed = await client.SendAsync(request);
        Assert.Equal("abc-123", echoed.Headers.GetValues("X-Request-ID").Single());

        var generated = await client.GetAsync("/health");
        Assert.Matches("^[0-9a-f]{32}$", generated.Headers.GetValues("X-Request-ID").Single());

        var unsafeRequest = new HttpRequestMessage(HttpMethod.Get, "/health");
        unsafeRequest.Headers.TryAddWithoutValidation("X-Request-ID", "<script>alert(1)</script>");
        var replaced = await client.SendAsync(unsafeRequest);
        Assert.Matches("^[0-9a-f]{32}$", replaced.Headers.GetValues("X-Request-ID").Single());
    }

    [Fact]
    public async Task SecurityHeaders_OnApiAnswers()
    {
        using var client = App.Client();
        var response = await client.GetAsync("/health");
        Assert.Equal("nosniff", response.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.Equal("DENY", response.Headers.GetValues("X-Frame-Options").Single());
        Assert.Equal("strict-origin-when-cross-origin", response.Headers.GetValues("Referrer-Policy").Single());
        Assert.Equal("default-src 'none'; frame-ancestors 'none'", response.Headers.GetValues("Content-Security-Policy").Single());
    }

    [Fact]
    public async Task UnknownRoute404_AndWrongMethod405_AreProblemJson()
    {
        using var client = App.Client();
        var missing = await client.GetAsync("/api/v1/does-not-exist");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("application/problem+json", missing.Content.Headers.ContentType?.MediaType);
        Assert.Equal(404, (await missing.ReadJsonAsync()).GetProperty("status").GetInt32());

        var wrongMethod = await client.DeleteAsync("/api/v1/auth/login");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, wrongMethod.StatusCode);
        Assert.Equal("application/problem+json", wrongMethod.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task OpenApi_DescribesAuthRoutes_AndDocsPageServesHtml()
    {
        using var client = App.Client();
        var spec = await client.GetAsync("/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, spec.StatusCode);
        var doc = await spec.ReadJsonAsync();
        var paths = doc.GetProperty("paths");
        foreach (var path in new[] { "/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/users/me", "/api/v1/admin/users", "/health" })
            Assert.True(paths.TryGetProperty(path, out _), $"OpenAPI lacks {path}");
        Assert.Equal("bearer", doc.GetProperty("components").GetProperty("securitySchemes").GetProperty("Bearer").GetProperty("scheme").GetString());

        var page = await client.GetAsync("/docs/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Contains("<title>SutazAI API</title>", html);
        Assert.StartsWith("default-src 'self'", page.Headers.GetValues("Content-Security-Policy").Single());
    }

    [Fact]
    public async Task Metrics_ExposeLoginAndLockoutCounters()
    {
        using var client = App.Client();
        var user = await Accounts.RegisterAsync(client);
        await Accounts.LoginAsync(client, user.Username);
        for (var i = 0; i < 5; i++)
            await client.PostAsJsonAsync("/api/v1/auth/login", new { login = user.Username, password = "Wrong#Password1" });

        var text = await client.GetStringAsync("/metrics");
        Assert.Matches(@"sutazai_auth_logins_total\{[^}]*result=""success""[^}]*\} [1-9]", text);
        Assert.Matches(@"sutazai_auth_logins_total\{[^}]*result=""invalid_credentials""[^}]*\} [1-9]", text);
        Assert.Matches(@"sutazai_auth_lockouts_total\{[^}]*\} [1-9]", text);
        Assert.Contains("http_server_request_duration_seconds", text);
        Assert.Contains("microsoft_entityframeworkcore_queries_total", text);
    }

    [Fact]
    public async Task ResponseCompression_AppliesToJsonWhenAsked()
    {
        using var client = App.Client();
        var request = new HttpRequestMessage(HttpMethod.Get, "/openapi/v1.json");
        request.Headers.AcceptEncoding.ParseAdd("gzip");
        var response = await client.SendAsync(request);
        Assert.Equal("gzip", response.Content.Headers.ContentEncoding.Single());
    }

    [Fact]
    public async Task JwtSigningKey_IsGeneratedIntoTheDatabase_NotOntoDisk_AndSurvivesRestart()
    {
        string StoredKey() => App.WithDbAsync(db => db.SystemFlags.Where(f => f.Key == JwtKeyStore.FlagKey).Select(f => f.Value!).SingleAsync()).GetAwaiter().GetResult();
        var key = StoredKey();
        Assert.Equal(64, Convert.FromBase64String(key).Length);
        Assert.False(File.Exists(Path.Combine(App.DataDir, "keys", JwtKeyStore.LegacyFileName)));
        Assert.Equal("database", App.Services.GetRequiredService<JwtKeyStore>().Source);

        using var client = App.Client();
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(client);
        await using var restarted = TestApp.Create(DbProvider.Sqlite, dataDir: App.DataDir);
        using var again = restarted.Client(tokens.AccessToken);
        Assert.Equal(HttpStatusCode.OK, (await again.GetAsync("/api/v1/users/me")).StatusCode);
        Assert.Equal(key, StoredKey());
    }

    /// <summary>
    /// The key ring lives in a table the warm-up migrates, so ASP.NET Core's own start-up prefetch of it (which would
    /// query the table before it exists on a fresh database) is not among the host's services; the warm-up reads it.
    /// </summary>
    [Fact]
    public void TheFrameworksKeyRingPrefetch_IsNotRegistered()
    {
        var hosted = App.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>().Select(s => s.GetType().FullName).ToList();
        Assert.Contains(typeof(Sutazai.Server.Data.DatabaseMigrator).FullName, hosted);
        Assert.DoesNotContain("Microsoft.AspNetCore.DataProtection.Internal.DataProtectionHostedService", hosted);
    }

    /// <summary>
    /// An earlier version kept the signing key and the data-protection keys as files per node: the first start of
    /// this one moves them into the database, so tokens and cookies issued before the upgrade keep working.
    /// </summary>
    [Fact]
    public async Task KeysAnEarlierVersionKeptOnDisk_MoveIntoTheDatabase_AndWhatTheySignedStillOpens()
    {
        var dataDir = Directory.CreateTempSubdirectory("sutazai-legacy-keys-").FullName;
        var keys = Path.Combine(dataDir, "keys");
        var protection = Path.Combine(keys, "data-protection");
        Directory.CreateDirectory(protection);
        var legacyKey = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(64));
        await File.WriteAllTextAsync(Path.Combine(keys, JwtKeyStore.LegacyFileName), legacyKey);
        // A payload protected with a file-kept key ring, as the earlier version's cookies were.
        var fileRing = Microsoft.AspNetCore.DataProtection.DataProtectionProvider.Create(new DirectoryInfo(protection),
            b => b.SetApplicationName("sutazai"));
        var sealedText = fileRing.CreateProtector("test").Protect("kept across the upgrade");
        var keyFiles = Directory.GetFiles(protection, "*.xml").Select(f => Path.GetFileNameWithoutExtension(f)).ToList();
        Assert.Single(keyFiles);

        await using var app = TestApp.Create(DbProvider.Sqlite, dataDir: dataDir);
        using var client = app.Client();
        Assert.Equal(legacyKey, await app.WithDbAsync(db => db.SystemFlags.Where(f => f.Key == JwtKeyStore.FlagKey).Select(f => f.Value!).SingleAsync()));
        Assert.False(File.Exists(Path.Combine(keys, JwtKeyStore.LegacyFileName)));
        Assert.False(Directory.Exists(protection));
        Assert.False(Directory.Exists(keys)); // both moved out, so the earlier version's folder is gone
        Assert.Equal(keyFiles, await app.WithDbAsync(db => db.DataProtectionKeys.Select(k => k.FriendlyName!).ToListAsync()));
        var provider = app.Services.GetRequiredService<Microsoft.AspNetCore.DataProtection.IDataProtectionProvider>();
        Assert.Equal("kept across the upgrade", provider.CreateProtector("test").Unprotect(sealedText));
    }

    [Fact]
    public async Task Sqlite_UsesWalJournal_InTheDataDir()
    {
        Assert.True(File.Exists(Path.Combine(App.DataDir, "sutazai.db")));
        var mode = await App.WithDbAsync(async db =>
        {
            await db.Database.OpenConnectionAsync();
            await using var command = db.Database.GetDbConnection().CreateCommand();
            command.CommandText = "PRAGMA journal_mode";
            return (string?)await command.ExecuteScalarAsync();
        });
        Assert.Equal("wal", mode);
    }

    [Fact]
    public void ConfigurationDocs_MatchTheRegistry()
    {
        var root = RepoRoot();
        var docs = File.ReadAllText(Path.Combine(root, "docs", "configuration.md")).ReplaceLineEndings("\n");
        Assert.True(docs == SettingsRegistry.ToMarkdown(),
            "docs/configuration.md is out of date: run `dotnet run --project src/Sutazai.Server -- config docs > docs/configuration.md`.");
    }

    [Fact]
    public void EveryOptionsProperty_HasARegistryEntry()
    {
        var keys = SettingsRegistry.All.Select(s => s.Key).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var sections = new (Type Type, string Section)[]
        {
            (typeof(SutazaiOptions), SutazaiOptions.Section), (typeof(DatabaseOptions), DatabaseOptions.Section),
            (typeof(PoolOptions), DatabaseOptions.Section + ":Pool"), (typeof(AuthOptions), AuthOptions.Section),
            (typeof(RateLimitOptions), RateLimitOptions.Section), (typeof(HttpOptions), HttpOptions.Section),
            (typeof(MailOptions), MailOptions.Section),
        };
        foreach (var (type, section) in sections)
        {
            foreach (var property in type.GetProperties().Where(p => p.CanWrite && (p.PropertyType.IsPrimitive || p.PropertyType == typeof(string) || p.PropertyType == typeof(TimeSpan))))
                Assert.True(keys.Contains($"{section}:{property.Name}"), $"{section}:{property.Name} is not in SettingsRegistry");
        }
    }

    [Theory]
    [InlineData(DbProvider.Sqlite)]
    [InlineData(DbProvider.Postgres)]
    public void Migrations_HaveNoPendingModelChanges(DbProvider provider)
    {
        var options = new DbContextOptionsBuilder<AppDbContext>();
        var db = new DatabaseOptions { Provider = provider == DbProvider.Postgres ? "postgres" : "sqlite", ConnectionString = provider == DbProvider.Postgres ? "Host=127.0.0.1;Database=unused" : "Data Source=:memory:", CommandTimeoutSeconds = 30, Pool = new PoolOptions { MaxSize = 1, TimeoutSeconds = 1, IdleLifetimeSeconds = 1 } };
        DatabaseSetup.Configure(options, db, Path.GetTempPath());
        using var context = new AppDbContext(options.Options);
        Assert.False(context.Database.HasPendingModelChanges(), $"The {provider} model has changes without a migration: add one with dotnet ef migrations add.");
        Assert.NotEmpty(context.Database.GetMigrations());
    }

    internal static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Sutazai.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Sutazai.slnx not found above the test binaries.");
    }
}

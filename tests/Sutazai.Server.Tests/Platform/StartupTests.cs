using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Npgsql;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Platform;

/// <summary>Behaviour that needs an app of its own: fresh databases, special settings, broken dependencies.</summary>
public sealed class StartupTests
{
    [Theory]
    [InlineData(DbProvider.Sqlite)]
    [InlineData(DbProvider.Postgres)]
    public async Task FirstAccountEver_IsAdmin_EvenWhenRegistrationsRace(DbProvider provider)
    {
        await using var app = TestApp.Create(provider);
        var roles = new ConcurrentBag<string>();
        await Parallel.ForEachAsync(Enumerable.Range(0, 6), new ParallelOptions { MaxDegreeOfParallelism = 6 }, async (i, ct) =>
        {
            using var client = app.Client();
            var user = await Accounts.RegisterAsync(client, Accounts.UniqueName($"r{i}"));
            roles.Add(user.Role);
        });
        Assert.Equal(1, roles.Count(r => r == "admin"));
        Assert.Equal(5, roles.Count(r => r == "user"));
    }

    [Fact]
    public async Task Lockout_EndsAfterTheConfiguredDuration()
    {
        await using var app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?>
        {
            ["Sutazai:Auth:LockoutDuration"] = "00:00:02",
            ["Sutazai:Auth:MaxFailedAttempts"] = "3",
        });
        using var client = app.Client();
        var user = await Accounts.RegisterAsync(client);
        for (var i = 0; i < 2; i++)
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.PostAsJsonAsync("/api/v1/auth/login", new { login = user.Username, password = "Wrong#Password1" })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.PostAsJsonAsync("/api/v1/auth/login", new { login = user.Username, password = "Wrong#Password1" })).StatusCode);
        // Locked (it answers as a wrong password does): even the right password is refused.
        Assert.NotNull(await app.WithDbAsync(db => db.Users.AsNoTracking().Where(u => u.Id == user.Id).Select(u => u.LockoutEnd).SingleAsync()));
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.PostAsJsonAsync("/api/v1/auth/login", new { login = user.Username, password = user.Password })).StatusCode);

        await Task.Delay(TimeSpan.FromSeconds(2.5));
        await Accounts.LoginAsync(client, user.Username);
    }

    [Fact]
    public async Task AuthRateLimit_Returns429WithRetryAfter()
    {
        await using var app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?> { ["Sutazai:RateLimits:AuthPerMinute"] = "3" });
        using var client = app.Client();
        for (var i = 0; i < 3; i++)
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.PostAsJsonAsync("/api/v1/auth/login", new { login = "nobody", password = "Wrong#Password1" })).StatusCode);
        var limited = await client.PostAsJsonAsync("/api/v1/auth/password-reset", new { email = "a@example.test" });
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        var retryAfter = int.Parse(limited.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(retryAfter, 1, 60);
        Assert.Equal(429, (await limited.ReadJsonAsync()).GetProperty("status").GetInt32());
        // Other routes are not limited by the auth policy.
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health")).StatusCode);
    }

    [Fact]
    public async Task PasswordResetToken_ExpiresAfterItsLifetime()
    {
        await using var app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?> { ["Sutazai:Auth:PasswordResetTokenLifetime"] = "00:00:01" });
        using var client = app.Client();
        var user = await Accounts.RegisterAsync(client);
        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsJsonAsync("/api/v1/auth/password-reset", new { email = user.Email })).StatusCode);
        var token = Mail.Token(app.MailsTo(user.Email).Single(m => m.Contains("Reset your SutazAI password", StringComparison.Ordinal)), "password-reset/confirm");
        await Task.Delay(TimeSpan.FromSeconds(2));
        var late = await client.PostAsJsonAsync("/api/v1/auth/password-reset/confirm", new { token, newPassword = "Fresh#Start2026" });
        Assert.Equal(HttpStatusCode.BadRequest, late.StatusCode);
        await Accounts.LoginAsync(client, user.Username);
    }

    [Fact]
    public async Task Cors_AllowsOnlyConfiguredOrigins()
    {
        await using var app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?> { ["Sutazai:Http:CorsOrigins"] = "https://ui.example.test" });
        using var client = app.Client();
        HttpRequestMessage Preflight(string origin)
        {
            var request = new HttpRequestMessage(HttpMethod.Options, "/api/v1/auth/login");
            request.Headers.Add("Origin", origin);
            request.Headers.Add("Access-Control-Request-Method", "POST");
            return request;
        }
        var allowed = await client.SendAsync(Preflight("https://ui.example.test"));
        Assert.Equal("https://ui.example.test", allowed.Headers.GetValues("Access-Control-Allow-Origin").Single());
        var denied = await client.SendAsync(Preflight("https://evil.example.test"));
        Assert.False(denied.Headers.Contains("Access-Control-Allow-Origin"));
    }

    [Fact]
    public void InvalidSetting_StopsStartup_NamingTheSetting()
    {
        using var app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?> { ["Sutazai:Database:Provider"] = "mongo" });
        var error = Assert.Throws<OptionsValidationException>(() => app.Server);
        Assert.Contains("Sutazai:Database:Provider must be 'sqlite' or 'postgres'", error.Message);
    }

    [Fact]
    public async Task WhileWarmingUp_LivenessAnswers_ReadinessSaysWhatIsLeft_AndRequestsWaitForIt()
    {
        // A worker on an empty database warms up until an api node has migrated it: a warm-up that cannot end early.
        var dataDir = Directory.CreateTempSubdirectory("sutazai-test-").FullName;
        try
        {
            await using var worker = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?> { ["Sutazai:Role"] = "worker" }, dataDir: dataDir);
            worker.WaitForWarmup = false;
            using var client = worker.Client();
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health")).StatusCode);
            var ready = await client.GetAsync("/health/ready");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            var startup = (await ready.ReadJsonAsync()).GetProperty("checks").GetProperty("startup");
            Assert.Equal("unhealthy", startup.GetProperty("status").GetString());
            Assert.Equal("Warming up: database migrations.", startup.GetProperty("description").GetString());

            var held = client.GetAsync("/api/v1/auth/me");
            await Task.Delay(500);
            Assert.False(held.IsCompleted, "a request was served before the schema existed");

            await using var api = TestApp.Create(DbProvider.Sqlite, dataDir: dataDir);
            api.Client().Dispose();
            // The worker sees the schema on its next poll, then the held request is answered (a worker serves no API: 404).
            Assert.Equal(HttpStatusCode.NotFound, (await held.WaitAsync(TimeSpan.FromSeconds(30))).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/ready")).StatusCode);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(dataDir, recursive: true);
        }
    }

    [Fact]
    public void UnreachableDatabase_FailsStartup_WithAClearMessage()
    {
        var closed = Sutazai.Inference.Tests.Fakes.FakeServer.ClosedPortRoot().Port;
        using var app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?>
        {
            ["Sutazai:Database:Provider"] = "postgres",
            ["Sutazai:Database:ConnectionString"] = $"Host=127.0.0.1;Port={closed};Username=postgres;Database=x",
            ["Sutazai:Database:Pool:TimeoutSeconds"] = "2",
        });
        var error = Assert.Throws<InvalidOperationException>(() => app.Server);
        Assert.StartsWith("Database migration failed on Npgsql.EntityFrameworkCore.PostgreSQL", error.Message);
    }

    [Fact]
    public async Task Ready_Returns503_WhenThePostgresDatabaseGoesAway()
    {
        await using var app = TestApp.Create(DbProvider.Postgres);
        using var client = app.Client();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/ready")).StatusCode);

        TestApp.DropPostgresDatabase(app.PostgresDatabase!);

        var response = await client.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var body = await response.ReadJsonAsync();
        Assert.Equal("unhealthy", body.GetProperty("status").GetString());
        Assert.Equal("unhealthy", body.GetProperty("checks").GetProperty("database").GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health")).StatusCode);
    }

    [Fact]
    public async Task Postgres_PoolSettingsAreApplied()
    {
        await using var app = TestApp.Create(DbProvider.Postgres, new Dictionary<string, string?>
        {
            ["Sutazai:Database:Pool:MaxSize"] = "7",
            ["Sutazai:Database:Pool:ConnectionLifetimeSeconds"] = "1800",
        });
        var cs = await app.WithDbAsync(db => Task.FromResult(new NpgsqlConnectionStringBuilder(db.Database.GetConnectionString())));
        Assert.Equal(7, cs.MaxPoolSize);
        Assert.Equal(1800, cs.ConnectionLifetime);
        Assert.Equal(30, cs.Timeout);
        Assert.Equal(30, cs.KeepAlive);
    }
}

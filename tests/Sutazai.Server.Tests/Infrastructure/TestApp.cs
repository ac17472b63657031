using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Sutazai.Server.Hosting;
using Npgsql;
using Sutazai.Data;

namespace Sutazai.Server.Tests.Infrastructure;

public enum DbProvider { Sqlite, Postgres }

/// <summary>
/// The real server in-process on a temporary data directory and a real database: a SQLite file, or a fresh database
/// on the PostgreSQL server that scripts/test.sh starts (SUTAZAI_TEST_POSTGRES).
/// </summary>
public sealed class TestApp : WebApplicationFactory<Program>
{
    public const string PostgresVariable = "SUTAZAI_TEST_POSTGRES";

    private readonly Dictionary<string, string?> _settings;
    private readonly Action<IServiceCollection>? _services;

    private readonly bool _ownsDataDir;
    private readonly Lock _startLock = new();
    private bool _kestrel;

    private TestApp(DbProvider provider, string dataDir, bool ownsDataDir, string? postgresDatabase, Dictionary<string, string?> settings, Action<IServiceCollection>? services)
    {
        _services = services;
        _ownsDataDir = ownsDataDir;
        Provider = provider;
        DataDir = dataDir;
        PostgresDatabase = postgresDatabase;
        _settings = settings;
    }

    public DbProvider Provider { get; }

    public string DataDir { get; }

    public string? PostgresDatabase { get; }

    public string OutboxDir => Path.Combine(DataDir, "outbox");

    /// <param name="services">Registrations applied after the app's own: replacements (a test embedder) or additions (a scripted model provider, a test tool).</param>
    public static TestApp Create(DbProvider provider, IDictionary<string, string?>? overrides = null, string? dataDir = null, Action<IServiceCollection>? services = null)
    {
        var ownsDataDir = dataDir is null;
        dataDir ??= Directory.CreateTempSubdirectory("sutazai-test-").FullName;
        var settings = new Dictionary<string, string?>
        {
            ["Sutazai:DataDir"] = dataDir,
            ["Sutazai:RateLimits:AuthPerMinute"] = "100000",
            ["Sutazai:PublicUrl"] = "http://localhost",
            // Quiet the expected noise (unique violations on purpose, first-run history queries); keep real errors.
            ["Logging:LogLevel:Default"] = "Warning",
            ["Logging:LogLevel:Microsoft.EntityFrameworkCore.Database.Command"] = "None",
            ["Logging:LogLevel:Microsoft.EntityFrameworkCore.Update"] = "None",
            ["Logging:LogLevel:Microsoft.AspNetCore.DataProtection"] = "Error",
        };
        string? database = null;
        if (provider == DbProvider.Postgres)
        {
            database = "sutazai_test_" + Guid.NewGuid().ToString("N");
            CreatePostgresDatabase(database);
            settings["Sutazai:Database:Provider"] = "postgres";
            settings["Sutazai:Database:ConnectionString"] = PostgresConnectionString(database);
            settings["Sutazai:Database:Pool:MaxSize"] = "20";
        }
        foreach (var (key, value) in overrides ?? new Dictionary<string, string?>()) settings[key] = value;
        return new TestApp(provider, dataDir, ownsDataDir, database, settings, services);
    }

    /// <summary>
    /// When true (the default) the app counts as started only once its warm-up (migrations, start-up steps) is done,
    /// as a client sees it: requests wait for it. False returns as soon as the host listens.
    /// </summary>
    public bool WaitForWarmup { get; set; } = true;

    // The app's own instance, held here: a failed warm-up stops the app, which then disposes its services.
    private readonly Warmup _warmup = new();

    protected override IHost CreateHost(IHostBuilder builder)
    {
        var host = base.CreateHost(builder);
        if (!WaitForWarmup) return host;
        try
        {
            _warmup.Done.GetAwaiter().GetResult();
        }
        catch (Exception)
        {
            host.Dispose();
            throw;
        }
        return host;
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        foreach (var (key, value) in _settings) builder.UseSetting(key, value);
        builder.ConfigureTestServices(s => s.AddSingleton(_warmup));
        if (_services is not null) builder.ConfigureTestServices(_services);
    }

    /// <summary>
    /// Serves the app from Kestrel on a free loopback port instead of the in-memory TestServer, so clients that open
    /// their own connections (the OpenAI SDK) talk to it over real sockets. Returns the base address.
    /// </summary>
    public Uri StartKestrel()
    {
        lock (_startLock)
        {
            _kestrel = true;
            UseKestrel(0);
            StartServer();
        }
        var addresses = Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses;
        return new Uri(addresses.First().Replace("[::]", "localhost", StringComparison.Ordinal));
    }

    /// <summary>Starts the server on first use; the factory's own start is not thread-safe, so this one is.</summary>
    public HttpClient Client(string? accessToken = null)
    {
        lock (_startLock)
        {
            if (!_kestrel) _ = Server;
        }
        var client = CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false });
        if (accessToken is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", accessToken);
        return client;
    }

    public async Task<T> WithDbAsync<T>(Func<AppDbContext, Task<T>> action)
    {
        await using var scope = Services.CreateAsyncScope();
        return await action(scope.ServiceProvider.GetRequiredService<AppDbContext>());
    }

    /// <summary>Reads every .eml written to the outbox for <paramref name="to"/>, oldest first.</summary>
    public IReadOnlyList<string> MailsTo(string to) => !Directory.Exists(OutboxDir)
        ? []
        : Directory.GetFiles(OutboxDir, "*.eml").Order(StringComparer.Ordinal)
            .Select(File.ReadAllText).Where(m => m.Contains("To: " + to, StringComparison.OrdinalIgnoreCase)).ToList();

    public static string PostgresBaseConnectionString =>
        Environment.GetEnvironmentVariable(PostgresVariable) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException(
                $"{PostgresVariable} is not set. Run the tests through ./scripts/test.sh, which starts PostgreSQL and sets it.");

    public static string PostgresConnectionString(string database) =>
        new NpgsqlConnectionStringBuilder(PostgresBaseConnectionString) { Database = database }.ConnectionString;

    public static void CreatePostgresDatabase(string database)
    {
        using var connection = new NpgsqlConnection(PostgresConnectionString("postgres"));
        connection.Open();
        using var command = new NpgsqlCommand($"CREATE DATABASE \"{database}\"", connection);
        command.ExecuteNonQuery();
    }

    public static void DropPostgresDatabase(string database)
    {
        NpgsqlConnection.ClearAllPools();
        using var connection = new NpgsqlConnection(PostgresConnectionString("postgres"));
        connection.Open();
        using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)", connection);
        command.ExecuteNonQuery();
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        if (PostgresDatabase is not null) DropPostgresDatabase(PostgresDatabase);
        if (!_ownsDataDir) return;
        try
        {
            Directory.Delete(DataDir, recursive: true);
        }
        catch (IOException)
        {
            // A SQLite WAL file may still be closing; the OS temp cleaner takes what is left.
        }
    }
}

/// <summary>One app per test class, shared by its tests (each test uses its own accounts).</summary>
public abstract class AppFixture(DbProvider provider, IDictionary<string, string?>? overrides = null) : IAsyncLifetime
{
    public TestApp App { get; private set; } = null!;

    /// <summary>The first account of this app, so an admin.</summary>
    public TestUser Admin { get; private set; } = null!;

    public Tokens AdminTokens { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        App = TestApp.Create(provider, overrides);
        using var client = App.Client();
        Admin = await Accounts.RegisterAsync(client, "admin" + Guid.NewGuid().ToString("N")[..8]);
        AdminTokens = await Accounts.LoginAsync(client, Admin.Username);
    }

    public async Task DisposeAsync() => await App.DisposeAsync();
}

public sealed class SqliteAppFixture() : AppFixture(DbProvider.Sqlite);

public sealed class PostgresAppFixture() : AppFixture(DbProvider.Postgres);

/// <summary>The scaled-out knowledge set-up: PostgreSQL for rows and full-text search, pgvector (the PGlite stand-in) for vectors.</summary>
public sealed class PgVectorAppFixture() : AppFixture(DbProvider.Postgres, new Dictionary<string, string?>
{
    ["Sutazai:Knowledge:VectorStore"] = "pgvector",
    ["Sutazai:Knowledge:PgVectorConnectionString"] = PgVectorCollection.ConnectionString,
});

/// <summary>Every test class that uses the one PGlite session (pgvector): they never run at the same time.</summary>
[CollectionDefinition(Name)]
public sealed class PgVectorCollection
{
    public const string Name = "pgvector";

    public static string ConnectionString =>
        Environment.GetEnvironmentVariable("SUTAZAI_TEST_PGVECTOR") is { Length: > 0 } cs ? cs
            : throw new InvalidOperationException("SUTAZAI_TEST_PGVECTOR is not set: run the tests through ./scripts/test.sh.");
}

public static class Json
{
    public static async Task<JsonElement> ReadJsonAsync(this HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    public static Task<HttpResponseMessage> PostJsonAsync(this HttpClient client, string url, object body) =>
        client.PostAsJsonAsync(url, body);
}

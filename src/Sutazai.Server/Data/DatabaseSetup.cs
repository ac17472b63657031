using System.Data.Common;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Npgsql;
using Sutazai.Data;
using Sutazai.Server.Configuration;
using Sutazai.Server.Hosting;

namespace Sutazai.Server.Data;

public static class DatabaseSetup
{
    public const string SqliteMigrationsAssembly = "Sutazai.Data.Sqlite";
    public const string PostgresMigrationsAssembly = "Sutazai.Data.Postgres";

    /// <summary>Registers <see cref="AppDbContext"/> on SQLite or PostgreSQL and migrates it at start-up.</summary>
    public static WebApplicationBuilder AddSutazaiDatabase(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddSingleton<SqlitePragmaInterceptor>();
        services.AddDbContext<AppDbContext>((sp, options) =>
        {
            var db = sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<DatabaseOptions>>().Value;
            var app = sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<SutazaiOptions>>().Value;
            Configure(options, db, app.DataPath, sp.GetRequiredService<SqlitePragmaInterceptor>());
        });
        services.AddHealthChecks().AddDbContextCheck<AppDbContext>("database", tags: ["ready"],
            customTestQuery: (ctx, ct) => ctx.Database.CanConnectAsync(ct));
        services.AddSingleton<Warmup>();
        services.AddHealthChecks().AddCheck<WarmupHealthCheck>("startup", tags: ["ready"]);
        // Files every node must read (uploaded originals, finished runs' workspaces): in the data dir, or in the database.
        services.AddSingleton<IContentStore>(sp =>
        {
            var app = sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<SutazaiOptions>>().Value;
            var db = sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<DatabaseOptions>>().Value;
            return sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<StorageOptions>>().Value.UsesDatabase(db)
                ? new DatabaseContentStore(sp.GetRequiredService<IServiceScopeFactory>(), sp.GetRequiredService<TimeProvider>())
                : new FileContentStore(app.DataPath);
        });
        services.AddHostedService<DatabaseMigrator>();
        return builder;
    }

    public static void Configure(DbContextOptionsBuilder options, DatabaseOptions db, string dataPath, SqlitePragmaInterceptor? interceptor = null)
    {
        if (db.IsPostgres)
        {
            options.UseNpgsql(BuildPostgresConnectionString(db), o => o
                .MigrationsAssembly(PostgresMigrationsAssembly)
                .CommandTimeout(db.CommandTimeoutSeconds));
        }
        else
        {
            options.UseSqlite(BuildSqliteConnectionString(db, dataPath), o => o
                .MigrationsAssembly(SqliteMigrationsAssembly)
                .CommandTimeout(db.CommandTimeoutSeconds));
            if (interceptor is not null) options.AddInterceptors(interceptor);
        }
    }

    public static string BuildSqliteConnectionString(DatabaseOptions db, string dataPath)
    {
        if (!string.IsNullOrWhiteSpace(db.ConnectionString)) return db.ConnectionString;
        PrivateFiles.CreateDirectory(dataPath);
        return new SqliteConnectionStringBuilder
        {
            DataSource = Path.Combine(dataPath, "sutazai.db"),
            Pooling = true,
            DefaultTimeout = db.CommandTimeoutSeconds,
        }.ToString();
    }

    /// <summary>Applies the pool settings over whatever the connection string says.</summary>
    public static string BuildPostgresConnectionString(DatabaseOptions db)
    {
        var csb = new NpgsqlConnectionStringBuilder(db.ConnectionString)
        {
            MinPoolSize = db.Pool.MinSize,
            MaxPoolSize = db.Pool.MaxSize,
            Timeout = db.Pool.TimeoutSeconds,
            ConnectionLifetime = db.Pool.ConnectionLifetimeSeconds,
            ConnectionIdleLifetime = db.Pool.IdleLifetimeSeconds,
            KeepAlive = db.Pool.KeepAliveSeconds,
            CommandTimeout = db.CommandTimeoutSeconds,
        };
        return csb.ConnectionString;
    }
}

/// <summary>Sets WAL, busy timeout and foreign keys on every SQLite connection the server opens.</summary>
public sealed class SqlitePragmaInterceptor(Microsoft.Extensions.Options.IOptions<DatabaseOptions> options) : DbConnectionInterceptor
{
    private string Pragmas => $"PRAGMA journal_mode=WAL; PRAGMA busy_timeout={options.Value.SqliteBusyTimeoutMs}; PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;";

    public override void ConnectionOpened(DbConnection connection, ConnectionEndEventData eventData)
    {
        using var command = connection.CreateCommand();
        command.CommandText = Pragmas;
        command.ExecuteNonQuery();
    }

    public override async Task ConnectionOpenedAsync(DbConnection connection, ConnectionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = Pragmas;
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}

/// <summary>
/// Runs <see cref="Warmup"/> in the background from the moment the host starts: applies pending migrations (EF Core
/// takes a database-wide migration lock, so when several nodes start together exactly one writes), then every
/// <see cref="IStartupStep"/>. In the <c>worker</c> role it never migrates: it waits until an <c>all</c> or <c>api</c>
/// node has. A failure is logged saying what failed and stops the server (exit code 1).
/// </summary>
public sealed class DatabaseMigrator(IServiceProvider services, IConfiguration configuration, Warmup warmup, IEnumerable<IStartupStep> steps,
    IHostApplicationLifetime lifetime, ILogger<DatabaseMigrator> logger) : IHostedLifecycleService
{
    public static readonly TimeSpan SchemaPollInterval = TimeSpan.FromSeconds(2);

    private readonly CancellationTokenSource _stopping = new();
    private Task _running = Task.CompletedTask;

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    // Once the server listens: until then the start-up path has both cores to itself.
    public Task StartedAsync(CancellationToken cancellationToken)
    {
        _running = Task.Run(() => WarmUpAsync(_stopping.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    private async Task WarmUpAsync(CancellationToken cancellationToken)
    {
        try
        {
            if (configuration.Migrates()) await MigrateAsync(services, logger, cancellationToken);
            else await WaitForSchemaAsync(cancellationToken);
            foreach (var step in steps)
            {
                warmup.Enter($"start-up step {step.GetType().Name}");
                await step.RunAsync(cancellationToken);
            }
            warmup.Complete();
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            warmup.Fail(new OperationCanceledException("The server stopped while starting."));
        }
        catch (Exception ex)
        {
            logger.LogCritical(ex, "Start-up failed, so the server stops: {Message}", ex.Message);
            warmup.Fail(ex);
            lifetime.StopApplication();
        }
    }

    /// <summary>
    /// Applies every pending migration whatever the role (the server at start-up, <c>sutazai migrate</c> in an init
    /// container, the offline admin commands); returns the migrations applied.
    /// </summary>
    public static async Task<IReadOnlyList<string>> MigrateAsync(IServiceProvider services, ILogger logger, CancellationToken cancellationToken)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var provider = db.Database.ProviderName;
        try
        {
            var pending = (await db.Database.GetPendingMigrationsAsync(cancellationToken)).ToList();
            if (pending.Count > 0)
            {
                logger.LogInformation("Applying {Count} database migration(s) on {Provider}: {Migrations}", pending.Count, provider, string.Join(", ", pending));
                await db.Database.MigrateAsync(cancellationToken);
            }
            if (db.Database.IsSqlite() && db.Database.GetDbConnection().DataSource is { Length: > 0 } file)
            {
                // SQLite gives its -wal and -shm files the database file's mode.
                foreach (var suffix in new[] { "", "-wal", "-shm" }) PrivateFiles.Restrict(file + suffix);
            }
            return pending;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Reported by the caller, once: the server's warm-up logs it, a CLI command prints it.
            var target = db.Database.GetDbConnection().DataSource;
            throw new InvalidOperationException($"Database migration failed on {provider} ({target}): {ex.Message}", ex);
        }
    }

    /// <summary>
    /// The migrations the database lacks, without applying any or creating anything: <c>null</c> when a SQLite file
    /// does not exist yet.
    /// </summary>
    public static async Task<IReadOnlyList<string>?> PendingAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        if (db.Database.IsSqlite() && new SqliteConnectionStringBuilder(db.Database.GetConnectionString()).DataSource is { Length: > 0 } file
            && file != ":memory:" && !File.Exists(file))
            return null;
        return [.. await db.Database.GetPendingMigrationsAsync(cancellationToken)];
    }

    private async Task WaitForSchemaAsync(CancellationToken cancellationToken)
    {
        var logged = false;
        while (true)
        {
            try
            {
                var pending = await PendingAsync(services, cancellationToken);
                if (pending is { Count: 0 }) return;
                if (!logged)
                    logger.LogWarning("Worker role: waiting for an 'all' or 'api' node to {Work}", pending is null
                        ? "create the database" : $"apply {pending.Count} database migration(s): {string.Join(", ", pending)}");
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                if (!logged) logger.LogWarning(ex, "Worker role: the database is not reachable yet; waiting for it");
            }
            logged = true;
            await Task.Delay(SchemaPollInterval, cancellationToken);
        }
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        await _running.WaitAsync(cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

using Microsoft.Extensions.Options;
using Sutazai.Server.Configuration;
using Sutazai.Server.Data;
using Sutazai.Server.Hosting;
using Sutazai.Server.Identity;
using Sutazai.Server.Inference;

namespace Sutazai.Server.Cli;

/// <summary>
/// The services an offline admin command needs, on the configured database, without the web host: no Kestrel, no
/// hosted services started, no routes — only settings, the database, accounts and, for the model commands, the model
/// providers. The commands call the same services the API calls. A command that writes migrates the database first,
/// as the server would; one that only reads (<paramref name="readOnly"/>) never does, and refuses a database whose
/// schema is not current rather than read it.
/// </summary>
public static class OfflineHost
{
    public static async Task<WebApplication> StartAsync(string[] settings, bool withInference, CancellationToken ct, bool readOnly = false)
    {
        var builder = CreateBuilder(settings);
        builder.AddSutazaiSettings();
        builder.Services.AddMetrics();
        builder.Services.AddSingleton<SutazaiMetrics>();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.AddSutazaiDatabase();
        builder.AddSutazaiAccounts();
        // The administrator's run-time choices (Ollama address, default model) live in the database too.
        if (withInference) builder.AddSutazaiInference();
        Identity.IdentitySetup.RemoveKeyRingPrefetch(builder.Services);
        var app = builder.Build();
        try
        {
            // Settings are checked before anything is written, as at the server's start-up.
            _ = app.Services.GetRequiredService<IOptions<SutazaiOptions>>().Value;
            _ = app.Services.GetRequiredService<IOptions<DatabaseOptions>>().Value;
            if (!readOnly) await DatabaseMigrator.MigrateAsync(app.Services, app.Services.GetRequiredService<ILogger<DatabaseMigrator>>(), ct);
            else if (await DatabaseMigrator.PendingAsync(app.Services, ct) is var pending && pending is not { Count: 0 })
                throw new CliException(ExitCodes.Unavailable, pending is null
                    ? "There is no database yet, so there is nothing to read. Run `sutazai migrate` or start the server first."
                    : $"The database has {pending.Count} migration(s) not applied yet ({string.Join(", ", pending)}); this command only reads and does not apply them. Run `sutazai migrate` or start the server first.");
        }
        catch (InvalidOperationException ex)
        {
            await app.DisposeAsync();
            throw new CliException(ExitCodes.Unavailable, ex.Message);
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
        return app;
    }

    /// <summary>
    /// The server's own configuration sources (appsettings.json, environment, user secrets in Development, the command
    /// line), with only errors logged, to standard error, so that standard output stays the command's.
    /// </summary>
    public static WebApplicationBuilder CreateBuilder(string[] settings)
    {
        var builder = WebApplication.CreateBuilder(Hosting.HostPaths.Options(settings));
        builder.Logging.ClearProviders();
        builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        // Registered after appsettings.json's levels, so these win over them.
        builder.Logging.AddFilter((string?)null, LogLevel.Error);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Error);
        // A failed migration is reported by the command itself, once.
        builder.Logging.AddFilter("Sutazai.Server.Data.DatabaseMigrator", LogLevel.None);
        builder.Logging.AddFilter("Microsoft.EntityFrameworkCore", LogLevel.None);
        // sutazai doctor reports each check's outcome itself.
        builder.Logging.AddFilter("Microsoft.Extensions.Diagnostics.HealthChecks", LogLevel.None);
        return builder;
    }
}

using System.CommandLine;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Server.Configuration;
using Sutazai.Server.Hosting;

namespace Sutazai.Server.Cli;

/// <summary>
/// <c>sutazai doctor</c>: the server's own readiness checks (database, models, sandbox, Redis, RabbitMQ — whichever
/// are configured) run without starting it, plus what only matters before start-up: the schema, the llama.cpp native
/// library, the data folder and its free space. Each problem comes with what to do about it.
/// </summary>
public static class DoctorCommand
{
    /// <summary>Below this much free space in the data folder a model download is unlikely to fit.</summary>
    public const long LowDiskBytes = 2L << 30;

    public static void AddTo(RootCommand root, CliContext context)
    {
        var json = UserCommands.JsonOption();
        var doctor = new Command("doctor", "Check this machine and configuration: database, schema, llama.cpp, sandbox, Redis/RabbitMQ when configured, disk space. Exit code 1 when a check fails.") { json };
        doctor.Act(context, async (parse, ct) =>
        {
            var builder = OfflineHost.CreateBuilder(context.Settings);
            builder.AddSutazaiServer();
            await using var app = builder.Build();
            var checks = new List<Check>();
            var dataPath = app.Services.GetRequiredService<IOptions<SutazaiOptions>>().Value.DataPath;
            checks.Add(DataFolder(dataPath));
            checks.Add(DiskSpace(dataPath));
            var schema = await SchemaAsync(app.Services, ct);
            checks.Add(schema);
            // The model listing reads the administrator's choices from the database: only meaningful once it has its tables.
            var report = await app.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(r => schema.Status == "ok" || r.Name != "inference", ct);
            if (schema.Status != "ok") checks.Add(new Check("inference", "warn", "not checked before the schema is current", "Run sutazai migrate, then sutazai doctor again."));
            var missingFile = await MissingSqliteFileAsync(app.Services);
            foreach (var (name, entry) in report.Entries.OrderBy(e => e.Key, StringComparer.Ordinal))
                if (name == "database" && missingFile is not null)
                    checks.Add(new Check(name, "warn", $"no database file yet at {missingFile}", "Nothing to fix on a new install: the server creates it at its first start (or run sutazai migrate)."));
                else checks.Add(new Check(name, Status(entry.Status), entry.Description ?? entry.Exception?.Message ?? (entry.Status == HealthStatus.Healthy ? "ok" : "failed"), entry.Status == HealthStatus.Healthy ? null : Fix(name)));
            // After the health checks: the llama.cpp provider sets the native library's logging up before it loads.
            checks.Add(LlamaNative(app.Services));

            if (parse.GetValue(json)) context.Console.WriteJson(checks);
            else context.Console.Table(["CHECK", "STATUS", "DETAIL", "FIX"], checks.Select(c => new[] { c.Name, c.Status, c.Detail, c.Fix }));
            return checks.Any(c => c.Status == "fail") ? ExitCodes.Failed : ExitCodes.Ok;
        });
        root.Subcommands.Add(doctor);
    }

    private static string Status(HealthStatus status) => status switch
    {
        HealthStatus.Healthy => "ok",
        HealthStatus.Degraded => "warn",
        _ => "fail",
    };

    private static string? Fix(string check) => check switch
    {
        "database" => "Start the database, or fix Sutazai:Database:Provider / ConnectionString (sutazai config check).",
        "inference" => "Pull a model (sutazai models pull hf:…/file.gguf) or connect Ollama (Sutazai:Inference:Ollama:Url).",
        "sandbox" => "Install bubblewrap (apt-get install bubblewrap) or set Sutazai:Agents:Sandbox:BwrapPath; unprivileged user namespaces must be allowed.",
        "redis" => "Start Redis or fix Sutazai:Redis:Connection; empty keeps events in one process.",
        "rabbitmq" => "Start RabbitMQ or fix Sutazai:Tasks:RabbitMq:Url; Sutazai:Tasks:Transport=database needs none.",
        _ => null,
    };

    private static Check DataFolder(string dataPath)
    {
        try
        {
            Directory.CreateDirectory(dataPath);
            var probe = Path.Combine(dataPath, $".doctor-{Guid.NewGuid():N}");
            File.WriteAllText(probe, "");
            File.Delete(probe);
            return new Check("data-folder", "ok", dataPath, null);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return new Check("data-folder", "fail", $"{dataPath}: {ex.Message}", "Make the folder writable by this user, or point Sutazai:DataDir elsewhere.");
        }
    }

    private static Check DiskSpace(string dataPath)
    {
        try
        {
            var free = new DriveInfo(Path.GetPathRoot(Path.GetFullPath(dataPath)) is { Length: > 0 } r && Directory.Exists(dataPath) ? dataPath : "/").AvailableFreeSpace;
            return free < LowDiskBytes
                ? new Check("disk-space", "warn", $"{CliConsole.Size(free)} free in {dataPath}", "Free some space: a small chat model takes 0.3-1 GB, and the database and indexes grow with documents.")
                : new Check("disk-space", "ok", $"{CliConsole.Size(free)} free", null);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return new Check("disk-space", "warn", ex.Message, null);
        }
    }

    /// <summary>A SQLite database that does not exist yet cannot be connected to; on a new install that is expected.</summary>
    private static async Task<string?> MissingSqliteFileAsync(IServiceProvider services)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        if (!db.Database.IsSqlite()) return null;
        var file = db.Database.GetDbConnection().DataSource;
        return string.IsNullOrEmpty(file) || file == ":memory:" || File.Exists(file) ? null : file;
    }

    private static async Task<Check> SchemaAsync(IServiceProvider services, CancellationToken ct)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        try
        {
            var pending = (await db.Database.GetPendingMigrationsAsync(ct)).ToList();
            return pending.Count == 0
                ? new Check("schema", "ok", "up to date", null)
                : new Check("schema", "warn", $"{pending.Count} migration(s) pending", "Run sutazai migrate, or start the server in the all or api role (it migrates at start-up).");
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return new Check("schema", "fail", ex.Message, "Make the database reachable (see the database check).");
        }
    }

    private static Check LlamaNative(IServiceProvider services)
    {
        try
        {
            _ = services.GetRequiredService<Sutazai.Inference.LlamaCpp.LlamaCppProvider>();
            // Loads the native library LLamaSharp picked for this CPU; the server would do so at the first request.
            var devices = LLama.Native.NativeApi.llama_max_devices();
            var gpu = LLama.Native.NativeApi.llama_supports_gpu_offload();
            return new Check("llama-cpp", "ok", $"native library loaded ({devices} device slot(s), GPU offload {(gpu ? "supported" : "not supported")})", null);
        }
        catch (Exception ex) when (ex is DllNotFoundException or TypeInitializationException or BadImageFormatException or EntryPointNotFoundException or LLama.Exceptions.RuntimeError)
        {
            return new Check("llama-cpp", "fail", ex.InnerException?.Message ?? ex.Message, "Reinstall: the LLamaSharp.Backend.Cpu runtimes (runtimes/<rid>/native) must sit next to the server; local GGUF models cannot run without them.");
        }
    }

    public sealed record Check(string Name, string Status, string Detail, string? Fix);
}

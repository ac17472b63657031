using Sutazai.Agents;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Agents.Tools;
using Sutazai.Server.Configuration;
using Sutazai.Server.Hosting;
using Sutazai.Server.Tasks;

namespace Sutazai.Server.Agents;

public static class AgentsSetup
{
    public static WebApplicationBuilder AddSutazaiAgents(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<AgentOptions>().BindConfiguration(AgentOptions.Section)
            .ValidateDataAnnotations()
            .Validate(o => !CoderRepository.Problems(o.CoderRepositories).Any(),
                "Sutazai:Agents:CoderRepositories: entries separated by ';', each an absolute path, optionally followed by '|' and the users who may use it (comma-separated user names, or *).")
            .Validate<IEnumerable<IToolProvider>>((o, providers) => AgentAccess.ParseFamilies(o.ToolFamiliesByRole.User)
                    .All(f => f == AgentAccess.EveryFamily || providers.Any(p => string.Equals(p.Name, f, StringComparison.OrdinalIgnoreCase))),
                "Sutazai:Agents:ToolFamiliesByRole:User must be * or comma-separated names of installed tool families (GET /api/v1/admin/tools lists them).")
            .ValidateOnStart();
        services.AddSingleton<AgentAccess>();
        services.AddSingleton<RunHub>();
        services.AddSingleton<IRunControl>(sp => sp.GetRequiredService<RunHub>());
        services.AddSingleton(sp =>
        {
            var sutazai = sp.GetRequiredService<IOptions<SutazaiOptions>>();
            return new AgentDataDir(() => sutazai.Value.DataPath);
        });
        services.AddSingleton<AgentWorkerIdentity>();
        services.AddSingleton<AgentWorkspaces>();
        services.AddSingleton<RunArchive>();
        services.AddScoped<AgentCatalog>();
        services.AddScoped<AgentRunner>();
        services.AddScoped<AgentRunService>();
        services.AddScoped<MemoryStore>();
        services.AddSingleton<IToolProvider, MemoryToolProvider>();
        services.AddTaskHandler<AgentRunHandler>();
        services.AddHostedService<AgentRunRecovery>();
        services.AddScoped<JarvisRouter>();
        services.AddScoped<JarvisOrchestrator>();
        services.AddScoped<AgentAdministration>();
        services.AddSingleton<JarvisSocketRegistry>();
        return builder;
    }
}

/// <summary>
/// Finds runs whose worker died (status running, lease expired) and queues them again, so a crash never leaves a run
/// stuck: it resumes from its last stored step. At start-up it also re-queues runs left 'queued' (a crash between
/// storing a run and enqueueing it). Re-queueing is harmless: a run is claimed by one worker at a time.
/// </summary>
public sealed class AgentRunRecovery(IServiceScopeFactory scopes, Warmup warmup, TimeProvider time, ILogger<AgentRunRecovery> logger) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(15);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!await warmup.WaitAsync(stoppingToken)) return;
        var first = true;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
                var queue = scope.ServiceProvider.GetRequiredService<ITaskQueue>();
                var now = time.GetUtcNow().UtcDateTime;
                var stale = await db.AgentRuns.AsNoTracking()
                    .Where(r => (r.Status == AgentRunStatus.Running && (r.LeaseUntil == null || r.LeaseUntil < now)) || (first && r.Status == AgentRunStatus.Queued))
                    .Select(r => r.Id).Take(500).ToListAsync(stoppingToken);
                foreach (var id in stale)
                {
                    logger.LogInformation("Re-queueing agent run {RunId}", id);
                    await queue.EnqueueAsync(AgentRunService.TaskKind, JsonSerializer.Serialize(new { runId = id }), stoppingToken);
                }
                first = false;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning(ex, "Agent run recovery pass failed");
            }
            await Task.Delay(Interval, time, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }
}

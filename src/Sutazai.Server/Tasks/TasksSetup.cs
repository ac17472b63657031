using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Sutazai.Server.Configuration;
using Sutazai.Server.Hosting;

namespace Sutazai.Server.Tasks;

public static class TasksSetup
{
    /// <summary>The task queue on the configured transport, and the <see cref="TaskWorker"/> in the <c>all</c> and <c>worker</c> roles.</summary>
    public static WebApplicationBuilder AddSutazaiTasks(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<TaskOptions>().BindConfiguration(TaskOptions.Section, o => o.ErrorOnUnknownConfiguration = false)
            .ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<TaskSignal>();
        var transport = builder.Configuration.Read<TaskOptions>(TaskOptions.Section);
        if (transport.IsRabbitMq)
        {
            services.AddSingleton<RabbitMqTaskTransport>();
            services.AddSingleton<ITaskTransport>(sp => sp.GetRequiredService<RabbitMqTaskTransport>());
            services.AddHealthChecks().AddCheck<RabbitMqHealthCheck>("rabbitmq", tags: ["ready"]);
        }
        else
        {
            services.AddSingleton<ITaskTransport, DatabaseTaskTransport>();
        }
        services.AddSingleton<ITaskQueue>(sp => sp.GetRequiredService<ITaskTransport>());
        services.AddSingleton<Hosting.LifecycleEvents>();
        services.AddHostedService<Hosting.LifecycleSubscriptions>();
        if (builder.Configuration.RunsWorker()) services.AddHostedService<TaskWorker>();
        return builder;
    }

    /// <summary>Registers a task handler (scoped: resolved in a fresh scope for each delivery).</summary>
    public static IServiceCollection AddTaskHandler<THandler>(this IServiceCollection services) where THandler : class, ITaskHandler =>
        services.AddScoped<ITaskHandler, THandler>();

    /// <summary>Registers a system-event handler (scoped: resolved in a fresh scope for each delivery).</summary>
    public static IServiceCollection AddSystemEventHandler<THandler>(this IServiceCollection services) where THandler : class, ISystemEventHandler =>
        services.AddScoped<ISystemEventHandler, THandler>();
}

/// <summary>Ready only while the broker connection is open.</summary>
public sealed class RabbitMqHealthCheck(RabbitMqTaskTransport transport, IOptions<TaskOptions> options) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            return await transport.IsConnectedAsync(timeout.Token)
                ? HealthCheckResult.Healthy()
                : HealthCheckResult.Unhealthy("The RabbitMQ connection is closed.");
        }
        catch (Exception ex)
        {
            var url = new Uri(options.Value.RabbitMq.Url);
            return HealthCheckResult.Unhealthy($"RabbitMQ at {url.Host}:{url.Port} is unreachable: {ex.Message}");
        }
    }
}

using Microsoft.Extensions.Diagnostics.HealthChecks;
using Sutazai.Server.Hosting;

namespace Sutazai.Server.Health;

/// <summary>Publishes every periodic health report as the <c>sutazai.health.status</c> gauge, for alerting on readiness.</summary>
public sealed class HealthMetricsPublisher(SutazaiMetrics metrics) : IHealthCheckPublisher
{
    public static double Value(HealthStatus status) => status switch
    {
        HealthStatus.Healthy => 1,
        HealthStatus.Degraded => 0.5,
        _ => 0,
    };

    public Task PublishAsync(HealthReport report, CancellationToken cancellationToken)
    {
        var values = report.Entries.ToDictionary(e => e.Key, e => Value(e.Value.Status));
        values["all"] = Value(report.Status);
        metrics.SetHealth(values);
        return Task.CompletedTask;
    }
}

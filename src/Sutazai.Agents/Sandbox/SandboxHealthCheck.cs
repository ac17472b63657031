using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Sutazai.Agents.Sandbox;

/// <summary>
/// <c>sandbox</c> in /health/ready: degraded with "unavailable: …" when commands are refused (the rest of the server
/// still serves), degraded with a warning when the unsafe <c>none</c> mode is on.
/// </summary>
public sealed class SandboxHealthCheck(ProcessSandbox sandbox) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var status = sandbox.Status;
        if (!status.Available) return Task.FromResult(HealthCheckResult.Degraded($"unavailable: {status.Reason}; agent commands are refused."));
        if (sandbox.Options.IsUnsandboxed) return Task.FromResult(HealthCheckResult.Degraded("unsandboxed: Sutazai:Agents:Sandbox:Mode=none; agent commands run as the server's user."));
        var network = string.IsNullOrWhiteSpace(sandbox.Options.Network) ? "no network" : $"network for {sandbox.Options.Network}";
        var processes = status.ProcessLimitEnforced ? "" : "; process limit not enforced (root without a pids cgroup)";
        return Task.FromResult(HealthCheckResult.Healthy($"bubblewrap, {network}{processes}"));
    }
}

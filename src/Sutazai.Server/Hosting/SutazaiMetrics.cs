using System.Diagnostics.Metrics;

namespace Sutazai.Server.Hosting;

/// <summary>SutazAI's own instruments; exported at /metrics with the ASP.NET Core, runtime and database meters.</summary>
public sealed class SutazaiMetrics
{
    public const string MeterName = "Sutazai";

    private readonly Counter<long> _logins;
    private readonly Counter<long> _lockouts;

    public SutazaiMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _logins = meter.CreateCounter<long>("sutazai.auth.logins", description: "Login attempts by result.");
        _lockouts = meter.CreateCounter<long>("sutazai.auth.lockouts", description: "Accounts locked after repeated wrong passwords.");
    }

    /// <summary>result: success | invalid_credentials | locked | inactive.</summary>
    public void Login(string result) => _logins.Add(1, new KeyValuePair<string, object?>("result", result));

    public void Lockout() => _lockouts.Add(1);
}

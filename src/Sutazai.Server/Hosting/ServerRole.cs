using Sutazai.Server.Configuration;

namespace Sutazai.Server.Hosting;

/// <summary>
/// What this process does (<c>Sutazai:Role</c>): <c>all</c> serves the API and runs the task worker; <c>api</c> serves
/// the API only; <c>worker</c> consumes tasks only — no routes but the health endpoints and /metrics, and it never
/// migrates the database (it waits until an <c>all</c> or <c>api</c> node has).
/// </summary>
public static class ServerRole
{
    public const string All = "all";
    public const string Api = "api";
    public const string Worker = "worker";

    public static bool IsKnown(string role) => role is All or Api or Worker;

    public static string Role(this IConfiguration configuration) =>
        configuration.Read<SutazaiOptions>(SutazaiOptions.Section).Role.ToLowerInvariant();

    public static bool ServesApi(this IConfiguration configuration) => configuration.Role() != Worker;

    public static bool RunsWorker(this IConfiguration configuration) => configuration.Role() != Api;

    public static bool Migrates(this IConfiguration configuration) => configuration.Role() != Worker;
}

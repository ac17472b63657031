using Microsoft.AspNetCore.Hosting;

namespace Sutazai.Server.Hosting;

/// <summary>
/// <c>Sutazai:Http:MetricsUrl</c>: serve <c>/metrics</c> on a management address of its own (for deployments whose
/// main port is public). The address is added to the ones the server listens on; there <c>/metrics</c> is the only
/// route, and on the main addresses <c>/metrics</c> is not found.
/// </summary>
public static class MetricsPort
{
    public const string Setting = "Sutazai:Http:MetricsUrl";

    /// <summary>The management URL's port, or null when none is configured.</summary>
    public static int? Port(IConfiguration configuration) =>
        configuration[Setting] is { Length: > 0 } url && Uri.TryCreate(url, UriKind.Absolute, out var uri) ? uri.Port : null;

    /// <summary>Adds the management URL to the server's addresses (those of --urls / ASPNETCORE_URLS / HTTP_PORTS, else the default).</summary>
    public static void Listen(WebApplicationBuilder builder)
    {
        if (builder.Configuration[Setting] is not { Length: > 0 } metrics) return;
        var urls = builder.Configuration[WebHostDefaults.ServerUrlsKey];
        if (string.IsNullOrWhiteSpace(urls))
        {
            var ports = builder.Configuration["HTTP_PORTS"] ?? builder.Configuration["ASPNETCORE_HTTP_PORTS"];
            urls = string.IsNullOrWhiteSpace(ports)
                ? "http://localhost:5000"
                : string.Join(';', ports.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(p => $"http://*:{p}"));
        }
        builder.WebHost.UseUrls([.. urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), metrics]);
    }

    /// <summary>Keeps the two apart: only /metrics on the management port, and no /metrics on the others.</summary>
    public static void Separate(WebApplication app)
    {
        if (Port(app.Configuration) is not { } port) return;
        app.Use(async (context, next) =>
        {
            var onMetricsPort = context.Connection.LocalPort == port;
            if (onMetricsPort != context.Request.Path.Equals("/metrics", StringComparison.OrdinalIgnoreCase))
            {
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return;
            }
            await next(context);
        });
    }
}

using System.Net;

namespace Sutazai.Server.Tests.Cli;

/// <summary>Sutazai:Http:MetricsUrl on a real process: /metrics only on the management port, nothing else there.</summary>
public sealed class MetricsPortTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sutazai-metrics-port-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task MetricsUrl_ServesMetricsOnItsOwnPort_AndOnlyThere()
    {
        var (port, metricsPort) = (SutazaiProcess.FreePort(), SutazaiProcess.FreePort());
        using var main = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        using var management = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{metricsPort}") };
        var cli = new SutazaiProcess(_dir);
        using var server = await cli.ServeAsync(port, main, "/health/ready", $"--Sutazai:Http:MetricsUrl=http://127.0.0.1:{metricsPort}", "--Sutazai:Inference:Ollama:AutoDetect=false");
        try
        {
            var metrics = await management.GetAsync("/metrics");
            Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
            Assert.Equal("text/plain", metrics.Content.Headers.ContentType?.MediaType);
            Assert.Contains("sutazai_storage_free_bytes", await metrics.Content.ReadAsStringAsync(), StringComparison.Ordinal);

            Assert.Equal(HttpStatusCode.NotFound, (await main.GetAsync("/metrics")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await main.GetAsync("/health")).StatusCode);
            foreach (var path in new[] { "/health", "/api/v1/auth/me", "/login", "/" })
                Assert.Equal(HttpStatusCode.NotFound, (await management.GetAsync(path)).StatusCode);
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task AMetricsUrlWithoutAPort_IsRefusedAtStart_NamingTheSetting()
    {
        var cli = new SutazaiProcess(_dir);
        var result = await cli.RunAsync(["config", "check", "--json", "--Sutazai:Http:MetricsUrl=http://0.0.0.0"]);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(result.Json.GetProperty("problems").EnumerateArray().Select(p => p.GetString()!),
            p => p.Contains("Sutazai:Http:MetricsUrl: 'http://0.0.0.0' must be an http:// address with a port, e.g. http://0.0.0.0:9464.", StringComparison.Ordinal));
    }
}

using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Platform;

/// <summary>
/// Two hosts in one process (as in these tests, or a host embedding SutazAI): when one stops, the other's /metrics
/// still carries its own series. The SDK's AddMeter listened to every same-named meter in the process, and the
/// stopped host's disposed instruments ended the shared streams.
/// </summary>
public sealed class MetricsIsolationTests
{
    [Fact]
    public async Task AnotherHostStopping_LeavesThisHostsMetrics()
    {
        await using var kept = TestApp.Create(DbProvider.Sqlite);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await kept.Client().GetAsync("/health")).StatusCode);
        Assert.Contains("http_server_request_duration_seconds_count{", await kept.Client().GetStringAsync("/metrics"), StringComparison.Ordinal);

        var stopped = TestApp.Create(DbProvider.Sqlite);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await stopped.Client().GetAsync("/health")).StatusCode);
        await stopped.DisposeAsync();

        await kept.Client().GetStringAsync("/health");
        // Two collections: a stream whose instrument is gone is exported once more and then dropped. The exporter
        // serves a cached scrape for 300 ms, so the second scrape waits past that.
        await kept.Client().GetStringAsync("/metrics");
        await Task.Delay(TimeSpan.FromMilliseconds(600));
        var scrape = await kept.Client().GetStringAsync("/metrics");
        Assert.Contains("http_server_request_duration_seconds_count{", scrape, StringComparison.Ordinal);
        Assert.Contains("sutazai_storage_free_bytes", scrape, StringComparison.Ordinal);
    }
}

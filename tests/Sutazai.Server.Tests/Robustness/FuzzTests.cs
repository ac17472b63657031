using Sutazai.Server.Tests.Infrastructure;
using Sutazai.TestSupport.Fuzz;
using Xunit.Abstractions;

namespace Sutazai.Server.Tests.Robustness;

/// <summary>
/// The seeded fuzz suite (issue 23): every operation of the server's own OpenAPI document — so a new route is covered
/// without touching this test — and both WebSockets, against a real Kestrel server with the tiny model installed.
/// Any 5xx, any answer over 10 s, a dropped connection or a socket closed without a close code fails it.
/// The long run (100k cases) is <c>bench/run.sh fuzz</c>.
/// </summary>
public sealed class FuzzTests(ITestOutputHelper output)
{
    public static readonly Dictionary<string, string?> Settings = new()
    {
        ["Sutazai:Inference:LlamaCpp:ContextSize"] = "4096",
        ["Sutazai:Inference:LlamaCpp:ParallelSlots"] = "4",
        ["Sutazai:Inference:Ollama:AutoDetect"] = "false",
        // Cases should reach the handlers, not stop at the per-user budgets (which have their own tests).
        ["Sutazai:RateLimits:ExpensivePerMinute"] = "100000",
        ["Sutazai:RateLimits:ConcurrentGenerationsPerUser"] = "8",
    };

    [Fact]
    public async Task EveryRouteAndSocket_AnswersHostileInputWithoutServerErrorsOrHangs()
    {
        await using var app = TestApp.Create(DbProvider.Sqlite, Settings);
        ModelAppFixture.WriteModel(app.DataDir);
        var address = app.StartKestrel();
        using var client = new HttpClient { BaseAddress = address };
        var (root, tokens) = await Accounts.RegisterAndLoginAsync(client);

        var options = new FuzzOptions
        {
            Seed = int.TryParse(Environment.GetEnvironmentVariable("SUTAZAI_FUZZ_SEED"), out var seed) ? seed : 2026,
            Cases = 6_000,
            SocketSessions = 30,
            FramesPerSession = 15,
            // Bounded for CI: a slow machine stops early; the round-robin order still reaches every operation.
            Budget = TimeSpan.FromSeconds(75),
            Protected = new HashSet<string>(StringComparer.Ordinal) { root.Id.ToString(), root.Username, ModelAppFixture.ModelId },
            Known = new Dictionary<string, string[]> { ["model"] = [ModelAppFixture.ModelId] },
        };
        var report = await new ApiFuzzer(address, tokens.AccessToken, options).RunAsync();
        output.WriteLine(report.Summary());

        Assert.True(report.Findings.Count == 0, report.Summary());
        Assert.Empty(report.Uncovered);
        Assert.True(report.SocketSessions >= 2, report.Summary());
    }
}

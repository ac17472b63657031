using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Sutazai.Inference.Gguf;
using Sutazai.TestSupport.Fuzz;

/// <summary>
/// The long fuzz run (issue 23): the same seeded <see cref="ApiFuzzer"/> as the test suite's FuzzTests, against a real
/// <c>sutazai</c> process with the tiny model installed, for 100k HTTP cases by default plus hostile WebSocket sessions.
///   bench/run.sh --scenario fuzz [--cases 100000] [--seed 1] [--concurrency 4] [--socket-sessions 400]
/// Prints the status mix, latency and every finding (a 5xx, an answer over 10 s, a dropped connection, a socket closed
/// without a code); exits 1 when there is any.
/// </summary>
internal static class FuzzBench
{
    public static async Task<int> RunAsync(string serverDll, int cases, int seed, int concurrency, int socketSessions)
    {
        var work = Directory.CreateTempSubdirectory("sutazai-fuzz-").FullName;
        try
        {
            var data = Path.Combine(work, "data");
            Directory.CreateDirectory(Path.Combine(data, "models"));
            TinyModels.WriteDeterministic(Path.Combine(data, "models", "tiny-deterministic.gguf"), DeterministicModelSpec.Default());
            await using var server = await ServerProcess.StartAsync(serverDll, data, Environment.ProcessorCount,
                "--Sutazai:Inference:LlamaCpp:ContextSize=4096", "--Sutazai:RateLimits:AuthPerMinute=1000000",
                "--Sutazai:RateLimits:ExpensivePerMinute=1000000", "--Sutazai:RateLimits:ConcurrentGenerationsPerUser=8",
                "--Logging:LogLevel:Default=Error");
            using var root = await server.SignedInClientAsync("fuzzroot");
            var me = await root.GetFromJsonAsync<JsonElement>("/api/v1/users/me");
            var options = new FuzzOptions
            {
                Seed = seed,
                Cases = cases,
                Concurrency = concurrency,
                SocketSessions = socketSessions,
                FramesPerSession = 20,
                Budget = TimeSpan.FromHours(2),
                Protected = new HashSet<string>(StringComparer.Ordinal) { me.GetProperty("id").GetString()!, "fuzzroot", "tiny-deterministic" },
                Known = new Dictionary<string, string[]> { ["model"] = ["tiny-deterministic"] },
            };
            Console.WriteLine($"fuzz: {cases} HTTP cases, {socketSessions} sessions per socket, seed {seed}, {concurrency} in flight, machine {Environment.ProcessorCount} cores");
            var report = await new ApiFuzzer(new Uri(server.Url), root.DefaultRequestHeaders.Authorization!.Parameter!, options).RunAsync();

            Console.WriteLine();
            Console.WriteLine("| measure | value |");
            Console.WriteLine("|---|---|");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| HTTP cases | {report.Cases} over {report.Operations.Count(o => o.Value > 0)}/{report.Operations.Count} operations |"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| wall time | {report.Elapsed.TotalSeconds:F0} s ({report.Cases / report.Elapsed.TotalSeconds:F0} cases/s) |"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| latency p50 / p99 / max | {report.Percentile(50):F1} / {report.Percentile(99):F1} / {report.Percentile(100):F0} ms |"));
            Console.WriteLine($"| statuses | {string.Join(", ", report.Statuses.Select(s => $"{s.Key}×{s.Value}"))} |");
            Console.WriteLine($"| 5xx | {report.Statuses.Where(s => s.Key >= 500).Sum(s => s.Value)} |");
            Console.WriteLine($"| socket sessions / frames | {report.SocketSessions} / {report.SocketFrames} |");
            Console.WriteLine($"| socket ends | {string.Join(", ", report.SocketCloses.Select(s => $"{s.Key}×{s.Value}"))} |");
            Console.WriteLine($"| findings | {report.Findings.Count} (hangs {report.Findings.Count(f => f.Kind.Contains("hang", StringComparison.Ordinal))}, server errors {report.Findings.Count(f => f.Kind.Contains("server-error", StringComparison.Ordinal))}, dropped {report.Findings.Count(f => f.Kind.Contains("dropped", StringComparison.Ordinal))}) |");
            Console.WriteLine();
            Console.WriteLine(report.Summary());
            return report.Findings.Count == 0 ? 0 : 1;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Sutazai.Inference.Gguf;

/// <summary>
/// Conversations under load (issue 4): N concurrent users each list their conversations, create one and send a
/// message answered by the tiny deterministic model; compared with the same number of concurrent GET /health calls.
/// </summary>
internal static class ChatLoad
{
    public static async Task<int> RunAsync(string serverDll, int users)
    {
        var work = Directory.CreateTempSubdirectory("sutazai-load-").FullName;
        try
        {
            var models = Path.Combine(work, "data", "models");
            Directory.CreateDirectory(models);
            TinyModels.WriteDeterministic(Path.Combine(models, "tiny.gguf"), DeterministicModelSpec.Default());
            await using var server = await ServerProcess.StartAsync(serverDll, Path.Combine(work, "data"), Environment.ProcessorCount);
            var clients = new List<HttpClient>();
            for (var i = 0; i < users; i++) clients.Add(await server.SignedInClientAsync($"load{i}"));
            await Step(clients[0]); // load the model

            var health = await Measure(clients, c => c.GetAsync("/health"));
            var chat = await Measure(clients, Step);

            Console.WriteLine($"machine: {Environment.ProcessorCount} cores; {users} concurrent users; tiny deterministic model (8-token replies)");
            Console.WriteLine();
            Console.WriteLine("| scenario | requests | errors | p50 ms | p99 ms | throughput /s |");
            Console.WriteLine("|---|---|---|---|---|---|");
            Console.WriteLine(Row("GET /health", health));
            Console.WriteLine(Row("list + create + send message (3 requests, 1 generation)", chat));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| chat throughput ÷ /health throughput | | | | | {chat.Throughput / health.Throughput:F3} |"));
            return chat.Errors == 0 && health.Errors == 0 ? 0 : 1;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>One user step: list conversations, create one, send a message (answered in full).</summary>
    internal static async Task<HttpResponseMessage> Step(HttpClient client)
    {
        (await client.GetAsync("/api/v1/conversations")).EnsureSuccessStatusCode();
        var created = await client.PostAsJsonAsync("/api/v1/conversations", new { });
        created.EnsureSuccessStatusCode();
        var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        return await client.PostAsJsonAsync($"/api/v1/conversations/{id}/messages", new { content = "Hello there", options = new { temperature = 0 } });
    }

    private sealed record Result(int Requests, int Errors, double P50, double P99, double Throughput);

    private static async Task<Result> Measure(List<HttpClient> clients, Func<HttpClient, Task<HttpResponseMessage>> action, int rounds = 3)
    {
        var latencies = new List<double>();
        var errors = 0;
        var wall = Stopwatch.StartNew();
        for (var round = 0; round < rounds; round++)
        {
            var results = await Task.WhenAll(clients.Select(async c =>
            {
                var sw = Stopwatch.StartNew();
                try
                {
                    using var response = await action(c);
                    return (Ms: sw.Elapsed.TotalMilliseconds, Ok: response.IsSuccessStatusCode);
                }
                catch (HttpRequestException)
                {
                    return (Ms: sw.Elapsed.TotalMilliseconds, Ok: false);
                }
            }));
            latencies.AddRange(results.Select(r => r.Ms));
            errors += results.Count(r => !r.Ok);
        }
        latencies.Sort();
        return new Result(latencies.Count, errors, latencies[latencies.Count / 2], latencies[(int)Math.Min(latencies.Count - 1, Math.Ceiling(latencies.Count * 0.99) - 1)],
            latencies.Count / wall.Elapsed.TotalSeconds);
    }

    private static string Row(string name, Result r) =>
        string.Create(CultureInfo.InvariantCulture, $"| {name} | {r.Requests} | {r.Errors} | {r.P50:F1} | {r.P99:F1} | {r.Throughput:F1} |");
}

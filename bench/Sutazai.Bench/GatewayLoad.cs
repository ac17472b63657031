using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using Sutazai.Inference.Gguf;

/// <summary>
/// Scale-out under load (issue 15): 64 concurrent users (list + create + send, as chat-load) through the shipped nginx
/// gateway (deploy/nginx/sutazai.conf) in front of one node, then two nodes — separate processes with their own data
/// dirs on one PostgreSQL database — and the same single node without the gateway, side by side. Every message is
/// then counted in the database: none may be lost.
///   ./bench/run.sh --scenario gateway-load --postgres "Host=127.0.0.1;Port=5432;Username=postgres;Database=postgres"
/// </summary>
internal static class GatewayLoad
{
    public static async Task<int> RunAsync(string serverDll, string postgres, int users)
    {
        var rows = new List<string>();
        var failures = 0;
        foreach (var (label, nodes, viaGateway) in new[] { ("1 node, direct", 1, false), ("1 node via nginx", 1, true), ("2 nodes via nginx", 2, true) })
        {
            var (line, ok) = await RunOneAsync(serverDll, postgres, users, label, nodes, viaGateway);
            rows.Add(line);
            if (!ok) failures++;
        }
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores; {users} concurrent users × 3 rounds; tiny deterministic model; PostgreSQL; each node its own data dir, llama.cpp threads = cores ÷ nodes");
        Console.WriteLine();
        Console.WriteLine("| setup | steps | errors | lost messages | p50 ms | p99 ms | steps /s |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var row in rows) Console.WriteLine(row);
        return failures == 0 ? 0 : 1;
    }

    private static async Task<(string Row, bool Ok)> RunOneAsync(string serverDll, string postgres, int users, string label, int nodeCount, bool viaGateway)
    {
        var work = Directory.CreateTempSubdirectory("sutazai-gateway-").FullName;
        var database = "sutazai_bench_" + Guid.NewGuid().ToString("N")[..12];
        var connection = new NpgsqlConnectionStringBuilder(postgres) { Database = database }.ConnectionString;
        await using (var admin = new NpgsqlConnection(postgres))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{database}\"", admin);
            await create.ExecuteNonQueryAsync();
        }
        var servers = new List<ServerProcess>();
        Process? nginx = null;
        try
        {
            for (var n = 0; n < nodeCount; n++)
            {
                var dataDir = Path.Combine(work, $"node{n}");
                Directory.CreateDirectory(Path.Combine(dataDir, "models"));
                TinyModels.WriteDeterministic(Path.Combine(dataDir, "models", "tiny.gguf"), DeterministicModelSpec.Default());
                servers.Add(await ServerProcess.StartAsync(serverDll, dataDir, Math.Max(1, Environment.ProcessorCount / nodeCount),
                    "--Sutazai:Database:Provider=postgres", $"--Sutazai:Database:ConnectionString={connection}", "--Sutazai:Tasks:Transport=database",
                    "--Sutazai:Http:KnownProxies=127.0.0.1", "--Sutazai:RateLimits:ConcurrentGenerationsPerUser=8"));
                if (n == 0) await WaitReadyAsync(servers[0].Url); // the first node migrates; the others find the schema current
            }
            foreach (var server in servers) await WaitReadyAsync(server.Url);
            var url = servers[0].Url;
            if (viaGateway) (nginx, url) = await StartNginxAsync(work, servers.Select(s => new Uri(s.Url).Port).ToList());

            var clients = new List<HttpClient>();
            for (var i = 0; i < users; i++) clients.Add(await ServerProcess.SignInAsync(url, $"gw{i}"));
            await ChatLoad.Step(clients[0]); // load the model on the node that answers
            var latencies = new List<double>();
            var errors = 0;
            var wall = Stopwatch.StartNew();
            for (var round = 0; round < 3; round++)
            {
                var results = await Task.WhenAll(clients.Select(async c =>
                {
                    var sw = Stopwatch.StartNew();
                    try
                    {
                        using var response = await ChatLoad.Step(c);
                        return (sw.Elapsed.TotalMilliseconds, response.IsSuccessStatusCode);
                    }
                    catch (HttpRequestException)
                    {
                        return (sw.Elapsed.TotalMilliseconds, false);
                    }
                }));
                latencies.AddRange(results.Select(r => r.Item1));
                errors += results.Count(r => !r.Item2);
            }
            var seconds = wall.Elapsed.TotalSeconds;
            latencies.Sort();
            // Every step stores a user message and a complete reply (plus the warm-up step's two).
            long stored;
            await using (var db = new NpgsqlConnection(connection))
            {
                await db.OpenAsync();
                await using var count = new NpgsqlCommand("SELECT count(*) FROM messages WHERE \"Status\" = 'complete'", db);
                stored = (long)(await count.ExecuteScalarAsync())!;
            }
            var expected = (latencies.Count - errors + 1) * 2L;
            var lost = Math.Max(0, expected - stored);
            var row = string.Create(CultureInfo.InvariantCulture,
                $"| {label} | {latencies.Count} | {errors} | {lost} | {latencies[latencies.Count / 2]:F1} | {latencies[(int)Math.Min(latencies.Count - 1, Math.Ceiling(latencies.Count * 0.99) - 1)]:F1} | {latencies.Count / seconds:F1} |");
            return (row, errors == 0 && lost == 0);
        }
        finally
        {
            if (nginx is { HasExited: false }) nginx.Kill(entireProcessTree: true);
            foreach (var server in servers) await server.DisposeAsync();
            NpgsqlConnection.ClearAllPools();
            await using (var admin = new NpgsqlConnection(postgres))
            {
                await admin.OpenAsync();
                await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)", admin);
                await drop.ExecuteNonQueryAsync();
            }
            Directory.Delete(work, recursive: true);
        }
    }

    private static async Task WaitReadyAsync(string url)
    {
        using var http = new HttpClient { BaseAddress = new Uri(url) };
        for (var i = 0; i < 600; i++)
        {
            try
            {
                if ((await http.GetAsync("/health/ready")).IsSuccessStatusCode) return;
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }
            await Task.Delay(100);
        }
        throw new InvalidOperationException($"{url} did not get ready within 60 s.");
    }

    private static async Task<(Process, string)> StartNginxAsync(string work, IReadOnlyList<int> ports)
    {
        var repo = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", ".."));
        var conf = await File.ReadAllTextAsync(Path.Combine(repo, "deploy", "nginx", "sutazai.conf"));
        var servers = string.Join("\n", ports.Select(p => $"    server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;"));
        conf = System.Text.RegularExpressions.Regex.Replace(conf, @"    server node1:8080[^\n]*\n    server node2:8080[^\n]*", servers);
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        conf = conf.Replace("listen 80;", $"listen 127.0.0.1:{port};", StringComparison.Ordinal);
        var dir = Path.Combine(work, "nginx");
        Directory.CreateDirectory(dir);
        await File.WriteAllTextAsync(Path.Combine(dir, "sutazai.conf"), conf);
        var main = Path.Combine(dir, "nginx.conf");
        await File.WriteAllTextAsync(main, $"user root;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\nevents {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n" +
            $"  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n  include {dir}/sutazai.conf;\n}}\n");
        var nginx = Process.Start(new ProcessStartInfo("nginx", ["-p", dir, "-c", main, "-g", "daemon off;"])
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        nginx.OutputDataReceived += (_, _) => { };
        nginx.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine("nginx: " + e.Data); };
        nginx.BeginOutputReadLine();
        nginx.BeginErrorReadLine();
        var url = $"http://127.0.0.1:{port}";
        try
        {
            await WaitReadyAsync(url);
        }
        catch
        {
            nginx.Kill(entireProcessTree: true);
            throw;
        }
        return (nginx, url);
    }
}

using System.Net;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Sutazai.Server.Configuration;
using Sutazai.Server.Tests.Cli;
using Sutazai.Server.Tests.Infrastructure;
using YamlDotNet.RepresentationModel;
using Expect = Sutazai.TestSupport.DeterministicModelSpec.DefaultExpectations;

namespace Sutazai.Server.Tests.Platform;

/// <summary>
/// What deploy/ ships, checked with the tools that read it — there is no container engine or init system here:
/// systemd-analyze for the unit, nginx -t for the gateway, promtool for the scrape config and alert rules (and their
/// unit tests), the settings registry for every setting the compose files and the image set, and a live scrape for
/// every metric an alert names.
/// </summary>
public sealed partial class DeployTests : IDisposable
{
    internal static readonly string Deploy = Path.Combine(PlatformTests.RepoRoot(), "deploy");
    private readonly string _dir = Directory.CreateTempSubdirectory("sutazai-deploy-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static HashSet<string> DeclaredSettings => SettingsRegistry.All.Select(s => s.Key).ToHashSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>An environment variable's configuration key (<c>Sutazai__Http__KnownProxies</c> → <c>Sutazai:Http:KnownProxies</c>), or null for another variable.</summary>
    private static string? SettingOf(string variable) =>
        variable.StartsWith("Sutazai__", StringComparison.Ordinal) ? variable.Replace("__", ":", StringComparison.Ordinal) : null;

    [Fact]
    public async Task SystemdUnit_Verifies_AndKeepsWhatTheAgentSandboxNeeds()
    {
        var unit = await File.ReadAllTextAsync(Path.Combine(Deploy, "systemd", "sutazai.service"));
        foreach (var directive in new[] { "User=sutazai", "StateDirectory=sutazai", "WorkingDirectory=/var/lib/sutazai", "Environment=Sutazai__DataDir=/var/lib/sutazai",
                     "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "Delegate=yes", "CapabilityBoundingSet=" })
            Assert.Contains(directive + "\n", unit, StringComparison.Ordinal);
        // Each of these would break bubblewrap (namespaces, mounts), the per-command cgroups or slirp4netns.
        foreach (var breaking in new[] { "RestrictNamespaces", "PrivateUsers", "ProtectControlGroups", "PrivateDevices", "SystemCallFilter" })
            Assert.DoesNotMatch($"(?m)^{breaking}=", unit);

        // systemd-analyze checks that ExecStart's binary exists: point it at the server this test run built.
        var apphost = Path.Combine(Path.GetDirectoryName(SutazaiProcess.Dll)!, "sutazai");
        Assert.True(File.Exists(apphost), apphost);
        var copy = Path.Combine(_dir, "sutazai.service");
        await File.WriteAllTextAsync(copy, unit.Replace("ExecStart=/opt/sutazai/sutazai serve", $"ExecStart={apphost} serve", StringComparison.Ordinal));
        var verify = await Commands.RunAsync("systemd-analyze", ["verify", copy], _dir, timeoutSeconds: 60);
        Assert.True(verify.ExitCode == 0, verify.Output);
        Assert.DoesNotContain("sutazai.service:", verify.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NginxGateway_PassesNginxT_WithSocketsAndStreamsUnbuffered()
    {
        var conf = await File.ReadAllTextAsync(Path.Combine(Deploy, "nginx", "sutazai.conf"));
        foreach (var directive in new[] { "proxy_set_header Upgrade $http_upgrade;", "proxy_set_header Connection $connection_upgrade;", "proxy_buffering off;", "proxy_http_version 1.1;" })
            Assert.Contains(directive, conf, StringComparison.Ordinal);
        // The compose service names do not resolve here; everything else is checked as nginx would load it.
        var local = conf.Replace("server node1:8080", "server 127.0.0.1:18081", StringComparison.Ordinal).Replace("server node2:8080", "server 127.0.0.1:18082", StringComparison.Ordinal);
        Assert.NotEqual(conf, local);
        await File.WriteAllTextAsync(Path.Combine(_dir, "sutazai.conf"), local);
        var main = Path.Combine(_dir, "nginx.conf");
        await File.WriteAllTextAsync(main, $"pid {_dir}/nginx.pid;\nerror_log {_dir}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  include {_dir}/sutazai.conf;\n}}\n");
        var test = await Commands.RunAsync("nginx", ["-t", "-q", "-p", _dir, "-c", main], _dir, timeoutSeconds: 60);
        Assert.True(test.ExitCode == 0, test.Output);
    }

    [Fact]
    public async Task PrometheusConfig_AndAlertRules_PassPromtool_AndTheirUnitTests()
    {
        var folder = Path.Combine(Deploy, "prometheus");
        var config = await Commands.RunAsync("promtool", ["check", "config", "prometheus.yml"], folder, timeoutSeconds: 60);
        Assert.True(config.ExitCode == 0, config.Output);
        Assert.Contains("SUCCESS: 1 rule files found", config.Output, StringComparison.Ordinal);
        var rules = await Commands.RunAsync("promtool", ["check", "rules", "alerts.yml"], folder, timeoutSeconds: 60);
        Assert.True(rules.ExitCode == 0, rules.Output);
        Assert.Contains("SUCCESS: 8 rules found", rules.Output, StringComparison.Ordinal);
        var unit = await Commands.RunAsync("promtool", ["test", "rules", "alerts.test.yml"], folder, timeoutSeconds: 60);
        Assert.True(unit.ExitCode == 0, unit.Output);
        // Every alert has a unit test that fires it.
        var alerts = AlertName().Matches(await File.ReadAllTextAsync(Path.Combine(folder, "alerts.yml"))).Select(m => m.Groups[1].Value).ToHashSet();
        var tested = TestedAlert().Matches(await File.ReadAllTextAsync(Path.Combine(folder, "alerts.test.yml"))).Select(m => m.Groups[1].Value).ToHashSet();
        Assert.Equal(8, alerts.Count);
        Assert.Superset(alerts, tested);
    }

    /// <summary>Every PromQL expression of the Grafana dashboard.</summary>
    private static List<string> DashboardQueries()
    {
        using var dashboard = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(Deploy, "grafana", "sutazai-dashboard.json")));
        return [.. dashboard.RootElement.GetProperty("panels").EnumerateArray()
            .SelectMany(p => p.GetProperty("targets").EnumerateArray()).Select(t => t.GetProperty("expr").GetString()!)];
    }

    [Fact]
    public async Task GrafanaDashboard_QueriesAreValidPromQl()
    {
        var queries = DashboardQueries();
        Assert.True(queries.Count >= 10, $"{queries.Count} queries");
        // promtool parses every expression of a rule file: each query becomes a recording rule.
        var rules = "groups:\n  - name: dashboard\n    rules:\n" + string.Concat(queries.Select((q, i) =>
            $"      - record: dashboard:query_{i}\n        expr: {System.Text.Json.JsonSerializer.Serialize(q)}\n"));
        await File.WriteAllTextAsync(Path.Combine(_dir, "dashboard.rules.yml"), rules);
        var check = await Commands.RunAsync("promtool", ["check", "rules", "dashboard.rules.yml"], _dir, timeoutSeconds: 60);
        Assert.True(check.ExitCode == 0, check.Output);
        Assert.Contains($"SUCCESS: {queries.Count} rules found", check.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EveryMetricAnAlertOrTheDashboardNames_IsOneTheServerExports()
    {
        var names = MetricName().Matches(await File.ReadAllTextAsync(Path.Combine(Deploy, "prometheus", "alerts.yml"))).Select(m => m.Value)
            .Concat(DashboardQueries().SelectMany(q => MetricName().Matches(q).Select(m => m.Value))).ToHashSet();
        Assert.Contains("sutazai_inference_tokens_total", names);
        Assert.Contains("gen_ai_server_time_to_first_token_seconds_bucket", names);
        Assert.Contains("sutazai_tasks_processed_total", names);

        // A server that generated once (llama.cpp, a tiny model) and ran one agent task (a scripted model), so its
        // counters and histograms have samples.
        var kit = new Agents.AgentAppFixture();
        await kit.InitializeAsync();
        await using var app = kit.App;
        ModelAppFixtureBase.WriteModel(app.DataDir);
        using var client = await kit.UserAsync();
        var generate = await client.PostAsJsonAsync("/api/v1/generate", new { model = ModelAppFixtureBase.ModelId, prompt = Expect.OncePrompt, options = new { temperature = 0 } });
        Assert.Equal(HttpStatusCode.OK, generate.StatusCode);
        Assert.Equal(Expect.OnceCompletion, (await generate.ReadJsonAsync()).GetProperty("text").GetString());
        var task = "metrics-" + Guid.NewGuid().ToString("N")[..8];
        kit.Models.Script(task, Agents.ScriptedModels.Answer("done"));
        var run = await Agents.Runs.StartAsync(client, "shell", task);
        Assert.Equal("succeeded", (await Agents.Runs.WaitForAsync(client, run, "succeeded", "failed")).GetProperty("status").GetString());

        // Readiness is published by the health publisher a few seconds after start; the rest is there at once.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        var missing = names.ToList();
        var last = new HashSet<string>();
        while (missing.Count > 0 && DateTime.UtcNow < deadline)
        {
            var scrape = await app.Client().GetStringAsync("/metrics");
            var exported = ExportedName().Matches(scrape).Select(m => m.Groups[1].Value).ToHashSet();
            missing = names.Where(n => !exported.Contains(n)).ToList();
            last = exported;
            if (missing.Count > 0) await Task.Delay(500);
        }
        Assert.True(missing.Count == 0, $"Not exported: {string.Join(", ", missing)}; exported: {string.Join(", ", last.Where(n => n.StartsWith("sutazai", StringComparison.Ordinal)).Order())}");
        // The GenAI server histograms carry the conventions' attributes.
        var text = await app.Client().GetStringAsync("/metrics");
        Assert.Matches($@"gen_ai_server_time_per_output_token_seconds_count\{{[^}}]*gen_ai_request_model=""{ModelAppFixtureBase.ModelId}""[^}}]*\}} 1", text);
        Assert.Matches(@"gen_ai_server_time_to_first_token_seconds_count\{[^}]*gen_ai_provider_name=""llamacpp""[^}]*\} 1", text);
    }

    [Fact]
    public async Task ComposeFiles_AndTheImage_SetOnlyDeclaredSettings_AndReferenceFilesThatExist()
    {
        var declared = DeclaredSettings;
        var compose = Path.Combine(Deploy, "compose");
        foreach (var file in new[] { "compose.yaml", "compose.scale-out.yaml" })
        {
            var yaml = new YamlStream();
            using (var reader = new StreamReader(Path.Combine(compose, file))) yaml.Load(reader);
            var services = (YamlMappingNode)((YamlMappingNode)yaml.Documents[0].RootNode)["services"];
            Assert.NotEmpty(services.Children);
            foreach (var (nameNode, serviceNode) in services.Children)
            {
                var service = Merged((YamlMappingNode)serviceNode);
                var name = ((YamlScalarNode)nameNode).Value!;
                Assert.True(service.ContainsKey("image") || service.ContainsKey("build"), $"{file}: {name} has neither image nor build");
                if (service.TryGetValue("build", out var build))
                {
                    var b = (YamlMappingNode)build;
                    var context = Path.GetFullPath(Path.Combine(compose, ((YamlScalarNode)b["context"]).Value!));
                    Assert.True(File.Exists(Path.Combine(context, ((YamlScalarNode)b["dockerfile"]).Value!)), $"{file}: {name}'s Dockerfile");
                    Assert.True(File.Exists(Path.Combine(context, "Sutazai.slnx")), $"{file}: {name}'s build context is the repository root");
                }
                if (service.TryGetValue("environment", out var environment))
                {
                    foreach (var (key, _) in Merged((YamlMappingNode)environment))
                    {
                        if (key == "<<") continue;
                        if (SettingOf(key) is { } setting) Assert.True(declared.Contains(setting), $"{file}: {name} sets {key}, which is not a setting the server declares");
                    }
                }
                if (service.TryGetValue("volumes", out var volumes))
                {
                    foreach (var volume in ((YamlSequenceNode)volumes).Children.Select(v => ((YamlScalarNode)v).Value!))
                    {
                        var source = volume.Split(':')[0];
                        if (source.StartsWith('.')) Assert.True(File.Exists(Path.GetFullPath(Path.Combine(compose, source))), $"{file}: {name} mounts {source}, which does not exist");
                    }
                }
            }
        }

        var dockerfile = await File.ReadAllTextAsync(Path.Combine(compose, "Dockerfile"));
        foreach (var line in new[] { "USER sutazai", "VOLUME /data", "WORKDIR /data", "ENTRYPOINT [\"/app/sutazai\"]", "RUN dotnet publish src/Sutazai.Server -c Release -r linux-x64 -o /app" })
            Assert.Contains(line + "\n", dockerfile, StringComparison.Ordinal);
        Assert.Contains("HEALTHCHECK", dockerfile, StringComparison.Ordinal);
        Assert.Contains("libgomp1", dockerfile, StringComparison.Ordinal); // llama.cpp's OpenMP runtime
        Assert.Contains("bubblewrap", dockerfile, StringComparison.Ordinal);
        foreach (Match variable in DockerEnv().Matches(dockerfile))
            Assert.True(declared.Contains(SettingOf(variable.Groups[1].Value)!), $"Dockerfile sets {variable.Groups[1].Value}, which is not a setting the server declares");
    }

    /// <summary>A mapping with its YAML merge keys (<c>&lt;&lt;: *anchor</c>) applied, the mapping's own keys winning.</summary>
    private static Dictionary<string, YamlNode> Merged(YamlMappingNode node)
    {
        var result = new Dictionary<string, YamlNode>(StringComparer.Ordinal);
        if (node.Children.TryGetValue(new YamlScalarNode("<<"), out var merged) && merged is YamlMappingNode parent)
            foreach (var (key, value) in Merged(parent)) result[key] = value;
        foreach (var (key, value) in node.Children)
        {
            var name = ((YamlScalarNode)key).Value!;
            if (name != "<<") result[name] = value;
        }
        return result;
    }

    [GeneratedRegex(@"(?m)^\s+- alert: (\w+)$")]
    private static partial Regex AlertName();

    [GeneratedRegex(@"(?m)^\s+alertname: (\w+)$")]
    private static partial Regex TestedAlert();

    [GeneratedRegex(@"\b(?:sutazai|http_server|gen_ai)_[a-z_]+\b")]
    private static partial Regex MetricName();

    [GeneratedRegex(@"(?m)^([a-z_:]+)(?:\{| )")]
    private static partial Regex ExportedName();

    [GeneratedRegex(@"(Sutazai__[A-Za-z_]+)=")]
    private static partial Regex DockerEnv();
}

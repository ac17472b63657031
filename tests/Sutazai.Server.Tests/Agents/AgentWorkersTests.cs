using Sutazai.Agents;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Server.Agents;
using Sutazai.Server.Tasks;
using Sutazai.Server.Tests.Chat;
using Sutazai.Server.Tests.Infrastructure;
using Sutazai.Server.Tests.Tasks;

namespace Sutazai.Server.Tests.Agents;

/// <summary>
/// Agent runs scale across processes: an api-role node enqueues runs on RabbitMQ, two worker-role nodes (same
/// PostgreSQL database, same data folder) execute them. Every run is done exactly once in effect — one set of steps,
/// one tool invocation — and both workers took a share.
/// </summary>
[Collection(RabbitMqCollection.Name)]
public sealed class AgentWorkersTests : IAsyncLifetime
{
    private readonly ScriptedModels _models = new();
    private readonly TestKitTools _tools = new();
    private readonly List<TestApp> _apps = [];

    /// <param name="redisPrefix">When set, the nodes share live events over the test Redis on this channel prefix.</param>
    private static Dictionary<string, string?> Settings(string role, string? database, string? redisPrefix = null)
    {
        var settings = new Dictionary<string, string?>
        {
        ["Sutazai:Role"] = role,
        ["Sutazai:Tasks:Transport"] = "rabbitmq",
        ["Sutazai:Tasks:RabbitMq:Url"] = RabbitMqTaskQueueTests.Url,
        ["Sutazai:Tasks:RabbitMq:Prefetch"] = "2",
        ["Sutazai:Inference:Ollama:AutoDetect"] = "false",
        ["Sutazai:Agents:LeaseSeconds"] = "5",
        };
        if (database is not null) settings["Sutazai:Database:ConnectionString"] = TestApp.PostgresConnectionString(database);
        if (redisPrefix is not null)
        {
            settings["Sutazai:Redis:Connection"] = Hosting.ClusterBusTests.Redis;
            settings["Sutazai:Redis:ChannelPrefix"] = redisPrefix;
        }
        return settings;
    }

    private void Register(IServiceCollection services)
    {
        services.AddSingleton<Sutazai.Inference.IModelProvider>(_models);
        services.AddSingleton<Sutazai.Agents.Tools.IToolProvider>(_tools);
    }

    public async Task InitializeAsync() => await RabbitMqCollection.PurgeAsync();

    public async Task DisposeAsync()
    {
        foreach (var app in Enumerable.Reverse(_apps)) await app.DisposeAsync();
    }

    [Fact]
    public async Task TwoWorkers_ShareTheRuns_EachRunDoneOnce()
    {
        var api = TestApp.Create(DbProvider.Postgres, Settings("api", null), services: Register);
        _apps.Add(api);
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(api.Client());
        var client = api.Client(tokens.AccessToken);
        var workers = Enumerable.Range(0, 2).Select(n =>
        {
            var worker = TestApp.Create(DbProvider.Postgres, Settings("worker", api.PostgresDatabase), api.DataDir, Register);
            _apps.Add(worker);
            _ = worker.Services.GetRequiredService<ITaskTransport>();
            return worker;
        }).ToList();
        await Task.Delay(TimeSpan.FromSeconds(2)); // both consumers subscribed before the first run is queued

        var agent = await Runs.CreateAgentAsync(client, "shared", ["testkit"]);
        var runs = new List<(Guid Id, string Key)>();
        for (var i = 0; i < 12; i++)
        {
            var key = $"shared-run-{i}-{Guid.NewGuid():N}";
            _models.Script(key, ScriptedModels.Call("echo", new { text = key }), ScriptedModels.Answer("done " + i));
            runs.Add((await Runs.StartAsync(client, agent, key), key));
        }

        var executors = new HashSet<string>();
        foreach (var (id, key) in runs)
        {
            var run = await Runs.WaitForAsync(client, id, "succeeded", "failed");
            Assert.Equal("succeeded", run.GetProperty("status").GetString());
            Assert.Equal(["model", "tool_call", "tool_result", "model"], Runs.StepKinds(run));
            Assert.Single(_tools.Invocations, i => i == "echo:" + key);
            foreach (var step in run.GetProperty("steps").EnumerateArray().Where(s => s.GetProperty("kind").GetString() == "model"))
                executors.Add(step.GetProperty("data").GetProperty("worker").GetString()!);
        }
        Assert.Equal(2, executors.Count);
        var apiIdentity = api.Services.GetRequiredService<Sutazai.Agents.AgentWorkerIdentity>().Id;
        Assert.DoesNotContain(apiIdentity, executors);
        Assert.Equal(24, await api.WithDbAsync(db => db.AgentRunSteps.CountAsync(s => s.Kind == "model")));
        GC.KeepAlive(workers);
    }

    /// <summary>With Redis between them, a /ws/jarvis socket on the api node sees the worker's steps as they happen.</summary>
    [Fact]
    public async Task JarvisSocketOnTheApiNode_SeesTheStepsOfARunExecutedByAWorker()
    {
        var redisPrefix = "t" + Guid.NewGuid().ToString("N");
        var api = TestApp.Create(DbProvider.Postgres, Settings("api", null, redisPrefix), services: Register);
        _apps.Add(api);
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(api.Client());
        var client = api.Client(tokens.AccessToken);
        var worker = TestApp.Create(DbProvider.Postgres, Settings("worker", api.PostgresDatabase, redisPrefix), api.DataDir, Register);
        _apps.Add(worker);
        _ = worker.Services.GetRequiredService<ITaskTransport>();
        _ = worker.Services.GetRequiredService<RunHub>();
        await Task.Delay(TimeSpan.FromSeconds(2)); // the worker's consumer and Redis subscription are up

        await using var socket = await ChatClient.ConnectAsync(api, tokens.AccessToken, "/ws/jarvis");
        Assert.True((await socket.ReadConnectionAsync()).GetProperty("authenticated").GetBoolean());

        var key = "cross-node-" + Guid.NewGuid().ToString("N");
        _models.Script(key, ScriptedModels.Call("echo", new { text = key }), ScriptedModels.Answer("echoed " + key));
        var agent = await Runs.CreateAgentAsync(client, "cross", ["testkit"]);
        var runId = await Runs.StartAsync(client, agent, key);

        var frames = await socket.ReceiveUntilAsync("complete");
        Assert.All(frames, f => Assert.Equal(runId, f.GetProperty("runId").GetGuid()));
        Assert.Equal(["model", "tool_call", "tool_result", "model"],
            frames.Where(f => f.GetProperty("type").GetString() == "step").Select(f => f.GetProperty("step").GetProperty("kind").GetString()));
        Assert.Equal("echoed " + key, frames[^1].GetProperty("output").GetString());
        Assert.Single(_tools.Invocations, i => i == "echo:" + key);

        // It ran on the worker: the api node executes nothing in this role.
        Assert.Equal("succeeded", (await Runs.GetAsync(client, runId)).GetProperty("status").GetString());
    }
}

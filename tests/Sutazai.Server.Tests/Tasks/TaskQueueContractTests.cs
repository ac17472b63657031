using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Server.Tasks;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Tasks;

/// <summary>
/// The queue contract every transport passes. Each test runs an <c>api</c>-role app (migrates, enqueues, admin API)
/// and separate <c>worker</c>-role apps on the same database / broker, so workers can be started and "crashed" alone.
/// </summary>
public abstract class TaskQueueContractTests : IAsyncLifetime
{
    public const int MaxAttempts = 4;

    private readonly List<TestApp> _workers = [];

    protected TaskProbe Probe { get; } = new();

    protected TestApp Api { get; private set; } = null!;

    protected Tokens AdminTokens { get; private set; } = null!;

    protected abstract string TransportName { get; }

    protected virtual DbProvider Provider => DbProvider.Sqlite;

    protected abstract IDictionary<string, string?> TransportSettings { get; }

    /// <summary>The attempt number of the delivery after a worker died holding the task.</summary>
    protected abstract int AttemptAfterCrash { get; }

    /// <summary>Clears what earlier tests left on a shared backend.</summary>
    protected virtual Task ResetAsync() => Task.CompletedTask;

    private Dictionary<string, string?> Settings(string role)
    {
        var settings = new Dictionary<string, string?>(TransportSettings)
        {
            ["Sutazai:Role"] = role,
            ["Sutazai:Tasks:MaxAttempts"] = MaxAttempts.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Sutazai:Tasks:Concurrency"] = "4",
            ["Sutazai:Tasks:RetryBaseDelay"] = "00:00:00.2",
            ["Sutazai:Tasks:RetryMaxDelay"] = "00:00:00.8",
            ["Sutazai:Tasks:LeaseDuration"] = "00:00:03",
            ["Sutazai:Tasks:PollInterval"] = "00:00:00.1",
            ["Sutazai:Tasks:ShutdownGrace"] = "00:00:00.5",
            ["Sutazai:Inference:Ollama:AutoDetect"] = "false",
        };
        if (Api is { Provider: DbProvider.Postgres, PostgresDatabase: { } database })
            settings["Sutazai:Database:ConnectionString"] = TestApp.PostgresConnectionString(database);
        return settings;
    }

    public async Task InitializeAsync()
    {
        await ResetAsync();
        Api = TestApp.Create(Provider, Settings("api"), services: Probe.Register("api"));
        using var client = Api.Client();
        var admin = await Accounts.RegisterAsync(client);
        AdminTokens = await Accounts.LoginAsync(client, admin.Username);
    }

    public async Task DisposeAsync()
    {
        foreach (var worker in _workers) await worker.DisposeAsync();
        await Api.DisposeAsync();
    }

    /// <summary>Starts a worker-role app on the api app's database (and broker).</summary>
    protected TestApp StartWorker(string node)
    {
        var worker = TestApp.Create(Provider, Settings("worker"), dataDir: Api.DataDir, services: Probe.Register(node));
        _workers.Add(worker);
        _ = worker.Services.GetRequiredService<ITaskTransport>();
        return worker;
    }

    protected async Task StopWorkerAsync(TestApp worker)
    {
        _workers.Remove(worker);
        await worker.DisposeAsync();
    }

    protected ITaskQueue Queue => Api.Services.GetRequiredService<ITaskQueue>();

    private HttpClient Admin() => Api.Client(AdminTokens.AccessToken);

    private async Task<JsonElement?> DeadLetterAsync(Guid id)
    {
        using var client = Admin();
        var response = await client.GetAsync("/api/v1/admin/tasks/dead?limit=500");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var list = await response.ReadJsonAsync();
        foreach (var letter in list.EnumerateArray())
            if (letter.GetProperty("id").GetGuid() == id) return letter;
        return null;
    }

    private async Task<JsonElement> WaitForDeadLetterAsync(Guid id)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            if (await DeadLetterAsync(id) is { } letter) return letter;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Task {id} never showed up among the dead letters.");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task Enqueue_IsHandledOnce_WithKindPayloadAndFirstAttempt()
    {
        StartWorker("w1");
        var before = DateTimeOffset.UtcNow.AddSeconds(-2);
        var id = await Queue.EnqueueAsync("test.ok", """{"n":42}""");

        await TaskProbe.WaitUntilAsync(() => Probe.Effects.ContainsKey(id), "the task to be handled");
        await Task.Delay(500);
        Assert.Equal([1], Probe.AttemptsOf(id));
        var message = Probe.Messages[id];
        Assert.Equal("test.ok", message.Kind);
        Assert.Equal("""{"n":42}""", message.Payload);
        Assert.InRange(message.EnqueuedAt, before, DateTimeOffset.UtcNow);
        Assert.Null(await DeadLetterAsync(id));
    }

    [Fact]
    public async Task HandlerThrowingTwice_IsRetriedWithBackoff_AndSucceedsOnAttemptThree()
    {
        StartWorker("w1");
        var id = await Queue.EnqueueAsync("test.flaky", "{}");

        await TaskProbe.WaitUntilAsync(() => Probe.Effects.ContainsKey(id), "the third attempt to succeed");
        await Task.Delay(500);
        Assert.Equal([1, 2, 3], Probe.AttemptsOf(id));
        var at = Probe.Deliveries[id].Select(d => d.At).ToList();
        // Backoff 0.2 s after the first failure, 0.4 s after the second (a little slack for timer resolution).
        Assert.True(at[1] - at[0] >= TimeSpan.FromMilliseconds(180), $"first retry after {(at[1] - at[0]).TotalMilliseconds} ms");
        Assert.True(at[2] - at[1] >= TimeSpan.FromMilliseconds(380), $"second retry after {(at[2] - at[1]).TotalMilliseconds} ms");
        Assert.Null(await DeadLetterAsync(id));
    }

    [Fact]
    public async Task HandlerAlwaysThrowing_IsDeadLetteredAfterMaxAttempts_ThenRequeuedAndDeletedByAdmin()
    {
        StartWorker("w1");
        var id = await Queue.EnqueueAsync("test.fail", """{"doomed":true}""");

        var letter = await WaitForDeadLetterAsync(id);
        Assert.Equal([1, 2, 3, 4], Probe.AttemptsOf(id));
        Assert.Equal("test.fail", letter.GetProperty("kind").GetString());
        Assert.Equal(TaskQueues.Tasks, letter.GetProperty("queue").GetString());
        Assert.Equal("""{"doomed":true}""", letter.GetProperty("payload").GetString());
        Assert.Equal(MaxAttempts, letter.GetProperty("attempts").GetInt32());
        Assert.Equal("Failed 4 times; last error: InvalidOperationException: always fails", letter.GetProperty("error").GetString());

        using var admin = Admin();
        var stats = await (await admin.GetAsync("/api/v1/admin/tasks")).ReadJsonAsync();
        Assert.Equal(TransportName, stats.GetProperty("transport").GetString());
        Assert.Equal(1, stats.GetProperty("counts").GetProperty("dead").GetInt64());

        // Requeue: a fresh attempt count, handled once the cause is fixed.
        Probe.Healed[id] = true;
        Assert.Equal(HttpStatusCode.NoContent, (await admin.PostAsync($"/api/v1/admin/tasks/dead/{id}/requeue", null)).StatusCode);
        await TaskProbe.WaitUntilAsync(() => Probe.Effects.ContainsKey(id), "the requeued task to be handled");
        Assert.Equal([1, 2, 3, 4, 1], Probe.AttemptsOf(id));
        Assert.Null(await DeadLetterAsync(id));
        Assert.Equal(HttpStatusCode.NotFound, (await admin.PostAsync($"/api/v1/admin/tasks/dead/{id}/requeue", null)).StatusCode);

        // Delete: gone for good.
        var second = await Queue.EnqueueAsync("test.fail", "{}");
        await WaitForDeadLetterAsync(second);
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/api/v1/admin/tasks/dead/{second}")).StatusCode);
        Assert.Null(await DeadLetterAsync(second));
        var missing = await admin.DeleteAsync($"/api/v1/admin/tasks/dead/{second}");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("No dead letter with that id.", (await missing.ReadJsonAsync()).GetProperty("detail").GetString());
        var after = await (await admin.GetAsync("/api/v1/admin/tasks")).ReadJsonAsync();
        Assert.Equal(0, after.GetProperty("counts").GetProperty("dead").GetInt64());
    }

    [Fact]
    public async Task UnknownKind_IsDeadLetteredImmediately_WithAClearError()
    {
        StartWorker("w1");
        var id = await Queue.EnqueueAsync("test.nobody-handles-this", "{}");

        var letter = await WaitForDeadLetterAsync(id);
        Assert.Equal("No handler is registered for task kind 'test.nobody-handles-this'.", letter.GetProperty("error").GetString());
        Assert.Equal(1, letter.GetProperty("attempts").GetInt32());
    }

    [Fact]
    public async Task WorkerDyingWithATaskUnacked_TaskIsRedeliveredToAnotherWorker_AndDoneOnce()
    {
        var first = StartWorker("w1");
        var id = await Queue.EnqueueAsync("test.hang", "{}");
        Assert.Equal("w1", await Probe.HangStarted.Task.WaitAsync(TimeSpan.FromSeconds(30)));

        // w1 stops while its handler is stuck: it never acks (database: its lease is no longer renewed; RabbitMQ: its
        // channel closes with the delivery unacked).
        await StopWorkerAsync(first);
        Assert.False(Probe.Effects.ContainsKey(id));
        StartWorker("w2");

        await TaskProbe.WaitUntilAsync(() => Probe.Effects.ContainsKey(id), "the task to be redelivered to w2");
        await Task.Delay(300);
        Assert.Equal("w2", Probe.Effects[id]);
        Assert.Equal(["w1", "w2"], Probe.Deliveries[id].Select(d => d.Node).ToList());
        Assert.Equal([1, AttemptAfterCrash], Probe.AttemptsOf(id));
    }

    [Fact]
    public async Task TwoWorkers_Drain200Tasks_EachSideEffectExactlyOnce()
    {
        StartWorker("w1");
        StartWorker("w2");
        var ids = new List<Guid>();
        for (var i = 0; i < 200; i++) ids.Add(await Queue.EnqueueAsync("test.slow", $$"""{"i":{{i}}}"""));

        await TaskProbe.WaitUntilAsync(() => Probe.Effects.Count == 200, "200 side effects", 60_000);
        await Task.Delay(500);
        Assert.Equal(ids.Order(), Probe.Effects.Keys.Order());
        // Not only one effect per task: one delivery per task (no two workers ever held the same task).
        Assert.All(ids, id => Assert.Single(Probe.Deliveries[id]));
        var byNode = Probe.Effects.Values.GroupBy(n => n).ToDictionary(g => g.Key, g => g.Count());
        Assert.True(byNode.GetValueOrDefault("w1") > 0 && byNode.GetValueOrDefault("w2") > 0, $"w1 did {byNode.GetValueOrDefault("w1")}, w2 {byNode.GetValueOrDefault("w2")}");
        Assert.False(byNode.ContainsKey("api"));
    }

    [Fact]
    public async Task PublishedEvent_ReachesTheMatchingEventHandler_WithItsRoutingKey()
    {
        StartWorker("w1");
        await Queue.PublishEventAsync("other.ignored", """{"x":0}""");
        await Queue.PublishEventAsync("test.run.completed", """{"runId":"r1"}""");

        await TaskProbe.WaitUntilAsync(() => !Probe.Events.IsEmpty, "the event to be handled");
        await Task.Delay(500);
        var received = Assert.Single(Probe.Events);
        Assert.Equal("test.run.completed", received.Kind);
        Assert.Equal("""{"runId":"r1"}""", received.Payload);
        Assert.Equal(1, received.Attempt);
    }

    [Fact]
    public async Task ApiRole_RunsNoWorker()
    {
        var id = await Queue.EnqueueAsync("test.ok", "{}");
        await Task.Delay(1000);
        Assert.False(Probe.Deliveries.ContainsKey(id));
        Assert.DoesNotContain(Api.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>(), s => s is TaskWorker);
        StartWorker("w1");
        await TaskProbe.WaitUntilAsync(() => Probe.Effects.ContainsKey(id), "the worker to take the task");
        Assert.Equal("w1", Probe.Effects[id]);
    }
}

public sealed class DatabaseTaskQueueTests : TaskQueueContractTests
{
    protected override string TransportName => "database";

    protected override IDictionary<string, string?> TransportSettings => new Dictionary<string, string?> { ["Sutazai:Tasks:Transport"] = "database" };

    /// <summary>Each claim counts: a task whose workers keep dying is dead-lettered after MaxAttempts deliveries.</summary>
    protected override int AttemptAfterCrash => 2;

    [Fact]
    public async Task Rows_RecordEveryState_AndEventsAreStoredOnSystemEvents()
    {
        StartWorker("w1");
        var id = await Queue.EnqueueAsync("test.ok", "{}");
        await Queue.PublishEventAsync("test.stored", "{}");
        await TaskProbe.WaitUntilAsync(() => Probe.Effects.ContainsKey(id) && !Probe.Events.IsEmpty, "task and event");
        await Task.Delay(300);
        var rows = await Api.WithDbAsync(db => Task.FromResult(db.TaskQueue.OrderBy(t => t.CreatedAt).ToList()));
        Assert.Collection(rows,
            task =>
            {
                Assert.Equal((id, TaskQueues.Tasks, "test.ok", "done", 1), (task.Id, task.Queue, task.Kind, task.Status, task.Attempt));
                Assert.Null(task.LeaseOwner);
            },
            evt => Assert.Equal((TaskQueues.Events, "test.stored", "done", 1), (evt.Queue, evt.Kind, evt.Status, evt.Attempt)));
    }

    [Fact]
    public async Task TaskWhoseWorkersKeepDying_IsDeadLetteredAfterMaxAttemptsDeliveries()
    {
        var id = Guid.NewGuid();
        var past = DateTime.UtcNow.AddMinutes(-1);
        await Api.WithDbAsync(async db =>
        {
            // The fourth worker to claim it died too: leased, lease long expired.
            db.TaskQueue.Add(new Sutazai.Data.Entities.QueuedTask
            {
                Id = id, Queue = TaskQueues.Tasks, Kind = "test.ok", Payload = "{}", Status = "leased", Attempt = MaxAttempts,
                AvailableAt = past, LeaseOwner = "dead-node:1:abc", LeaseUntil = past, CreatedAt = past, UpdatedAt = past,
            });
            return await db.SaveChangesAsync();
        });
        StartWorker("w1");

        Sutazai.Data.Entities.QueuedTask row;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((row = await Api.WithDbAsync(db => Task.FromResult(db.TaskQueue.Single(t => t.Id == id)))).Status != "dead")
        {
            Assert.True(DateTime.UtcNow < deadline, $"still {row.Status} after 30 s");
            await Task.Delay(50);
        }
        Assert.Equal(MaxAttempts + 1, row.Attempt);
        Assert.Equal($"Delivered {MaxAttempts + 1} times without finishing (the workers holding it stopped or crashed); the limit is {MaxAttempts}.", row.LastError);
        Assert.False(Probe.Deliveries.ContainsKey(id));
    }
}

public sealed class PostgresTaskQueueTests : TaskQueueContractTests
{
    protected override string TransportName => "database";

    protected override DbProvider Provider => DbProvider.Postgres;

    protected override IDictionary<string, string?> TransportSettings => new Dictionary<string, string?> { ["Sutazai:Tasks:Transport"] = "database" };

    protected override int AttemptAfterCrash => 2;
}

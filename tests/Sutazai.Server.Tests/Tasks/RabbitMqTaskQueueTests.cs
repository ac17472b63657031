using System.Text;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using Sutazai.Server.Tasks;

namespace Sutazai.Server.Tests.Tasks;

/// <summary>Every test class that uses the one RabbitMQ broker: they never run at the same time.</summary>
[CollectionDefinition(Name)]
public sealed class RabbitMqCollection
{
    public const string Name = "rabbitmq";

    /// <summary>Declares the topology and empties its queues (tests sharing the broker run one after another).</summary>
    public static async Task PurgeAsync()
    {
        await using var connection = await new ConnectionFactory { Uri = new Uri(RabbitMqTaskQueueTests.Url) }.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        await RabbitMqTaskTransport.DeclareTopologyAsync(channel, CancellationToken.None);
        foreach (var queue in new[] { TaskQueues.Tasks, TaskQueues.Results, TaskQueues.Events, TaskQueues.DeadLetter(TaskQueues.Tasks), TaskQueues.DeadLetter(TaskQueues.Events) })
            await channel.QueuePurgeAsync(queue);
    }
}

/// <summary>
/// The contract against the RabbitMQ that scripts/test.sh starts (SUTAZAI_TEST_RABBITMQ). The topology's queue names
/// are fixed, so the tests of this class run one after another and each starts from purged queues.
/// </summary>
[Collection(RabbitMqCollection.Name)]
public sealed class RabbitMqTaskQueueTests : TaskQueueContractTests
{
    public const string Variable = "SUTAZAI_TEST_RABBITMQ";

    public static string Url => Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } url
        ? url
        : throw new InvalidOperationException($"{Variable} is not set. Run the tests through ./scripts/test.sh, which starts RabbitMQ and sets it.");

    protected override string TransportName => "rabbitmq";

    protected override IDictionary<string, string?> TransportSettings => new Dictionary<string, string?>
    {
        ["Sutazai:Tasks:Transport"] = "rabbitmq",
        ["Sutazai:Tasks:RabbitMq:Url"] = Url,
        ["Sutazai:Tasks:RabbitMq:Prefetch"] = "8",
    };

    /// <summary>The broker redelivers the same message (flagged redelivered); the attempt header counts only failures.</summary>
    protected override int AttemptAfterCrash => 1;

    protected override Task ResetAsync() => RabbitMqCollection.PurgeAsync();

    [Fact]
    public async Task PublishedEvent_ReachesATopicSubscriber_OnSutazaiTopic()
    {
        await using var connection = await new ConnectionFactory { Uri = new Uri(Url) }.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var queue = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await channel.QueueBindAsync(queue, RabbitMqTaskTransport.TopicExchange, "test.*.completed");
        var received = new TaskCompletionSource<(string Key, string Body, bool Persistent)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += (_, ea) =>
        {
            received.TrySetResult((ea.RoutingKey, Encoding.UTF8.GetString(ea.Body.Span), ea.BasicProperties.Persistent));
            return Task.CompletedTask;
        };
        await channel.BasicConsumeAsync(queue, autoAck: true, consumer);

        await Queue.PublishEventAsync("test.nothing.started", "{}");
        await Queue.PublishEventAsync("test.run.completed", """{"runId":"r2"}""");

        var (key, body, persistent) = await received.Task.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal("test.run.completed", key);
        Assert.Equal("""{"runId":"r2"}""", body);
        Assert.True(persistent);
    }

    [Fact]
    public async Task Topology_IsTheOriginalSutazaiOne_DurableAndBound()
    {
        _ = Queue;
        await Queue.EnqueueAsync("test.nobody-consumes-now", "{}");
        await using var connection = await new ConnectionFactory { Uri = new Uri(Url) }.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        // Passive declares fail (and close the channel) when a queue or exchange is missing.
        await channel.ExchangeDeclarePassiveAsync(RabbitMqTaskTransport.DirectExchange);
        await channel.ExchangeDeclarePassiveAsync(RabbitMqTaskTransport.TopicExchange);
        foreach (var queue in new[] { TaskQueues.Results, TaskQueues.Events, TaskQueues.DeadLetter(TaskQueues.Tasks) })
            await channel.QueueDeclarePassiveAsync(queue);
        var tasks = await channel.QueueDeclarePassiveAsync(TaskQueues.Tasks);
        Assert.Equal(1u, tasks.MessageCount);
        var got = await channel.BasicGetAsync(TaskQueues.Tasks, autoAck: true);
        Assert.NotNull(got);
        Assert.Equal(RabbitMqTaskTransport.DirectExchange, got.Exchange);
        Assert.Equal("test.nobody-consumes-now", got.BasicProperties.Type);
        Assert.True(got.BasicProperties.Persistent);

        // Every queue is a quorum queue: declaring one as classic is refused for its inequivalent x-queue-type.
        foreach (var queue in new[] { TaskQueues.Tasks, TaskQueues.Results, TaskQueues.Events, TaskQueues.DeadLetter(TaskQueues.Tasks), TaskQueues.DeadLetter(TaskQueues.Events) })
        {
            await using var probe = await connection.CreateChannelAsync();
            var refused = await Assert.ThrowsAsync<RabbitMQ.Client.Exceptions.OperationInterruptedException>(() =>
                probe.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false,
                    arguments: new Dictionary<string, object?> { ["x-queue-type"] = "classic" }));
            Assert.Equal((ushort)406, refused.ShutdownReason?.ReplyCode);
            Assert.Contains("x-queue-type", refused.ShutdownReason?.ReplyText, StringComparison.Ordinal);
        }
    }
}

using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace Sutazai.Server.Tasks;

/// <summary>
/// RabbitMQ with the original SutazAI topology: <c>sutazai.direct</c> (direct) routes to the durable queues
/// <c>agent.tasks</c> and <c>agent.results</c>; <c>sutazai.topic</c> (topic) routes every key to <c>system.events</c>.
/// Messages are persistent and published with confirms (a publish returns once the broker has the message; an
/// unroutable one fails). Consumers ack manually with a prefetch window. A failed delivery is re-published to a retry
/// queue whose TTL is the backoff (<c>agent.tasks.retry.5000ms</c>: one queue per delay, so no message waits behind a
/// longer one) and which dead-letters back to the source queue, with the attempt in the <c>x-attempt</c> header; after
/// MaxAttempts it goes to <c>agent.tasks.dead</c> / <c>system.events.dead</c> with the error in <c>x-error</c>. A
/// connection that drops is recovered automatically (connection, channels, topology, consumers); what was unacked on
/// it is redelivered by the broker.
/// </summary>
public sealed class RabbitMqTaskTransport(IOptions<TaskOptions> options, TimeProvider time, ILogger<RabbitMqTaskTransport> logger)
    : ITaskTransport, IAsyncDisposable
{
    public const string DirectExchange = "sutazai.direct";
    public const string TopicExchange = "sutazai.topic";
    public const string AttemptHeader = "x-attempt";
    public const string RoutingKeyHeader = "x-routing-key";
    public const string ErrorHeader = "x-error";
    public const string FailedAtHeader = "x-failed-at";
    public const string OriginHeader = "x-origin-queue";

    /// <summary>How many dead letters an admin requeue or delete looks through to find an id.</summary>
    private const int DeadLetterScanLimit = 10_000;

    private static readonly TimeSpan SettleTimeout = TimeSpan.FromSeconds(30);

    private readonly SemaphoreSlim _connecting = new(1, 1);
    private readonly SemaphoreSlim _publishing = new(1, 1);
    private IConnection? _connection;
    private IChannel? _publisher;
    private int _disposed;

    private TaskOptions Options => options.Value;

    private TimeProvider Time => time;

    private ILogger Logger => logger;

    public string Name => "rabbitmq";

    public async Task<Guid> EnqueueAsync(string kind, string payload, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(kind);
        ArgumentNullException.ThrowIfNull(payload);
        var id = Guid.CreateVersion7();
        var properties = NewProperties(id, kind, attempt: 1);
        await PublishAsync(DirectExchange, TaskQueues.Tasks, properties, Encoding.UTF8.GetBytes(payload), ct);
        return id;
    }

    public async Task PublishEventAsync(string routingKey, string payload, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(routingKey);
        ArgumentNullException.ThrowIfNull(payload);
        var properties = NewProperties(Guid.CreateVersion7(), routingKey, attempt: 1);
        await PublishAsync(TopicExchange, routingKey, properties, Encoding.UTF8.GetBytes(payload), ct);
    }

    private BasicProperties NewProperties(Guid id, string kind, int attempt) => new()
    {
        Persistent = true,
        MessageId = id.ToString("D"),
        Type = kind,
        ContentType = "application/json",
        Timestamp = new AmqpTimestamp(time.GetUtcNow().ToUnixTimeSeconds()),
        Headers = new Dictionary<string, object?> { [AttemptHeader] = attempt },
    };

    private async Task PublishAsync(string exchange, string routingKey, BasicProperties properties, ReadOnlyMemory<byte> body, CancellationToken ct)
    {
        var channel = await PublisherAsync(ct);
        await _publishing.WaitAsync(ct);
        try
        {
            // Confirm tracking is on: this returns when the broker confirmed, and throws on a nack or a return.
            await channel.BasicPublishAsync(exchange, routingKey, mandatory: true, properties, body, ct);
        }
        finally
        {
            _publishing.Release();
        }
    }

    private async Task<IChannel> PublisherAsync(CancellationToken ct)
    {
        if (_publisher is { IsOpen: true } ready) return ready;
        await _connecting.WaitAsync(ct);
        try
        {
            if (_publisher is { IsOpen: true } raced) return raced;
            if (_publisher is not null) await _publisher.DisposeAsync();
            _connection ??= await CreateFactory(1).CreateConnectionAsync("sutazai-producer", ct);
            _publisher = await _connection.CreateChannelAsync(ConfirmedChannel(1), ct);
            await DeclareTopologyAsync(_publisher, ct);
            return _publisher;
        }
        finally
        {
            _connecting.Release();
        }
    }

    private ConnectionFactory CreateFactory(int dispatchConcurrency) => new()
    {
        Uri = new Uri(Options.RabbitMq.Url),
        AutomaticRecoveryEnabled = true,
        TopologyRecoveryEnabled = true,
        NetworkRecoveryInterval = TimeSpan.FromSeconds(2),
        ConsumerDispatchConcurrency = (ushort)dispatchConcurrency,
    };

    private static CreateChannelOptions ConfirmedChannel(int dispatchConcurrency) =>
        new(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true, consumerDispatchConcurrency: (ushort)dispatchConcurrency);

    /// <summary>Declares exchanges, queues and bindings; idempotent, done by every producer and consumer connection.</summary>
    public static async Task DeclareTopologyAsync(IChannel channel, CancellationToken ct)
    {
        await channel.ExchangeDeclareAsync(DirectExchange, ExchangeType.Direct, durable: true, autoDelete: false, cancellationToken: ct);
        await channel.ExchangeDeclareAsync(TopicExchange, ExchangeType.Topic, durable: true, autoDelete: false, cancellationToken: ct);
        foreach (var queue in new[] { TaskQueues.Tasks, TaskQueues.Results, TaskQueues.Events, TaskQueues.DeadLetter(TaskQueues.Tasks), TaskQueues.DeadLetter(TaskQueues.Events) })
            await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments: Quorum(), cancellationToken: ct);
        await channel.QueueBindAsync(TaskQueues.Tasks, DirectExchange, TaskQueues.Tasks, cancellationToken: ct);
        await channel.QueueBindAsync(TaskQueues.Results, DirectExchange, TaskQueues.Results, cancellationToken: ct);
        await channel.QueueBindAsync(TaskQueues.Events, TopicExchange, "#", cancellationToken: ct);
    }

    /// <summary>
    /// Every queue is a quorum queue (replicated Raft log; also right on a single node, where it is simply durable).
    /// A broker still holding a classic queue of the same name from an earlier version refuses the declaration
    /// (PRECONDITION_FAILED): delete the old queue once (docs/operations.md).
    /// </summary>
    public static Dictionary<string, object?> Quorum(Dictionary<string, object?>? more = null)
    {
        var arguments = new Dictionary<string, object?>(more ?? []) { ["x-queue-type"] = "quorum" };
        return arguments;
    }

    public static string RetryQueue(string queue, TimeSpan delay) => $"{queue}.retry.{(long)delay.TotalMilliseconds}ms";

    public async Task ConsumeAsync(Func<TaskDelivery, CancellationToken, Task> dispatch, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await ConsumeOnceAsync(dispatch, stop);
            }
            catch (Exception ex) when (!stop.IsCancellationRequested)
            {
                logger.LogError(ex, "RabbitMQ consumer failed ({Url}); reconnecting in 5 s", RedactedUrl);
                await Task.Delay(TimeSpan.FromSeconds(5), time, stop).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
    }

    private async Task ConsumeOnceAsync(Func<TaskDelivery, CancellationToken, Task> dispatch, CancellationToken stop)
    {
        var name = $"sutazai-worker-{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}";
        var connection = await CreateFactory(1).CreateConnectionAsync(name, stop);
        var slots = new SemaphoreSlim(Options.Concurrency); // not disposed: an abandoned handler may still release it later
        var inFlight = new ConcurrentDictionary<ulong, Task>();
        try
        {
            var channel = await connection.CreateChannelAsync(ConfirmedChannel(1), stop);
            var publisher = await connection.CreateChannelAsync(ConfirmedChannel(1), stop);
            await DeclareTopologyAsync(channel, stop);
            await channel.BasicQosAsync(0, (ushort)Math.Min(Options.RabbitMq.Prefetch, ushort.MaxValue), global: false, stop);
            var settling = new Settler(this, channel, publisher);
            foreach (var queue in new[] { TaskQueues.Tasks, TaskQueues.Events })
            {
                var consumer = new AsyncEventingBasicConsumer(channel);
                consumer.ReceivedAsync += (_, ea) =>
                {
                    // Handlers run off the client's dispatch loop, so a stuck handler never blocks closing the channel;
                    // prefetch bounds what is delivered ahead, the slots bound what runs.
                    var delivery = new Delivery(settling, queue, ea.DeliveryTag, ea.RoutingKey, ea.BasicProperties, ea.Body.ToArray());
                    inFlight[ea.DeliveryTag] = RunAsync(delivery, ea.DeliveryTag);
                    return Task.CompletedTask;
                };
                await channel.BasicConsumeAsync(queue, autoAck: false, consumer, stop);
            }
            logger.LogInformation("Consuming {Tasks} and {Events} from RabbitMQ ({Url}) with prefetch {Prefetch}", TaskQueues.Tasks, TaskQueues.Events, RedactedUrl, Options.RabbitMq.Prefetch);
            await Task.Delay(Timeout.Infinite, stop).ContinueWith(_ => { }, TaskScheduler.Default);

            var pending = inFlight.Values.ToArray();
            if (pending.Length > 0)
            {
                try
                {
                    await Task.WhenAll(pending).WaitAsync(Options.ShutdownGrace, time, CancellationToken.None);
                }
                catch (TimeoutException)
                {
                    logger.LogWarning("{Count} task(s) still running after the {Grace} shutdown grace were abandoned; closing the connection hands them back to the broker",
                        inFlight.Count, Options.ShutdownGrace);
                }
            }
        }
        finally
        {
            // Closing without acking returns every unacknowledged message to its queue.
            try
            {
                await connection.CloseAsync(TimeSpan.FromSeconds(5));
            }
            catch (Exception ex)
            {
                logger.LogWarning(ex, "Closing the RabbitMQ consumer connection failed; the broker requeues its unacked messages when the socket drops");
            }
            await connection.DisposeAsync();
        }

        async Task RunAsync(Delivery delivery, ulong tag)
        {
            await Task.Yield();
            try
            {
                await slots.WaitAsync(stop);
            }
            catch (OperationCanceledException)
            {
                // Stopping before it started: left unacked, it returns to the queue when the connection closes.
                inFlight.TryRemove(tag, out Task? _);
                return;
            }
            try
            {
                await dispatch(delivery, stop);
            }
            catch (Exception ex)
            {
                logger.LogError(ex, "Settling task {Id} ({Kind}) failed; the broker delivers it again", delivery.Message.Id, delivery.Message.Kind);
            }
            finally
            {
                slots.Release();
                inFlight.TryRemove(tag, out Task? _);
            }
        }
    }

    public async Task<TaskQueueStats> GetStatsAsync(CancellationToken ct)
    {
        var connection = await ConnectionAsync(ct);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: ct);
        var queues = new List<QueueInfo>();
        foreach (var queue in new[] { TaskQueues.Tasks, TaskQueues.Results, TaskQueues.Events, TaskQueues.DeadLetter(TaskQueues.Tasks), TaskQueues.DeadLetter(TaskQueues.Events) })
        {
            var ok = await channel.QueueDeclarePassiveAsync(queue, ct);
            queues.Add(new QueueInfo(queue, ok.MessageCount, ok.ConsumerCount));
        }
        long Count(string queue) => queues.First(q => q.Name == queue).Messages;
        var counts = new Dictionary<string, long>
        {
            ["queued"] = Count(TaskQueues.Tasks) + Count(TaskQueues.Events),
            ["dead"] = Count(TaskQueues.DeadLetter(TaskQueues.Tasks)) + Count(TaskQueues.DeadLetter(TaskQueues.Events)),
        };
        return new TaskQueueStats(Name, counts, queues);
    }

    /// <summary>
    /// Reads dead letters without removing them: basic.get without ack on a private channel, which is then closed,
    /// so every message returns to the dead-letter queue.
    /// </summary>
    public async Task<IReadOnlyList<DeadLetter>> ListDeadAsync(int limit, CancellationToken ct)
    {
        var letters = new List<DeadLetter>();
        var connection = await ConnectionAsync(ct);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: ct);
        foreach (var queue in new[] { TaskQueues.Tasks, TaskQueues.Events })
        {
            while (letters.Count < limit && await channel.BasicGetAsync(TaskQueues.DeadLetter(queue), autoAck: false, ct) is { } got)
                letters.Add(ToDeadLetter(queue, got.BasicProperties, got.RoutingKey, got.Body));
        }
        await channel.CloseAsync(ct);
        return letters.OrderByDescending(l => l.FailedAt).ToList();
    }

    public Task<bool> RequeueDeadAsync(Guid id, CancellationToken ct) => TakeDeadAsync(id, async (channel, queue, got) =>
    {
        var kind = KindOf(queue, got.BasicProperties, got.RoutingKey);
        var properties = NewProperties(id, kind, attempt: 1);
        if (queue == TaskQueues.Events) properties.Headers![RoutingKeyHeader] = kind;
        var (exchange, key) = queue == TaskQueues.Tasks ? (DirectExchange, TaskQueues.Tasks) : (TopicExchange, kind);
        await channel.BasicPublishAsync(exchange, key, mandatory: true, properties, got.Body, ct);
    }, ct);

    public Task<bool> DeleteDeadAsync(Guid id, CancellationToken ct) => TakeDeadAsync(id, (_, _, _) => Task.CompletedTask, ct);

    /// <summary>Finds the dead letter with <paramref name="id"/>, runs <paramref name="act"/> on it and acks it; every other message read goes back.</summary>
    private async Task<bool> TakeDeadAsync(Guid id, Func<IChannel, string, BasicGetResult, Task> act, CancellationToken ct)
    {
        var connection = await ConnectionAsync(ct);
        await using var channel = await connection.CreateChannelAsync(ConfirmedChannel(1), ct);
        var found = false;
        foreach (var queue in new[] { TaskQueues.Tasks, TaskQueues.Events })
        {
            for (var scanned = 0; !found && scanned < DeadLetterScanLimit; scanned++)
            {
                if (await channel.BasicGetAsync(TaskQueues.DeadLetter(queue), autoAck: false, ct) is not { } got) break;
                if (!Guid.TryParse(got.BasicProperties.MessageId, out var messageId) || messageId != id) continue;
                await act(channel, queue, got);
                await channel.BasicAckAsync(got.DeliveryTag, multiple: false, ct);
                found = true;
            }
            if (found) break;
        }
        await channel.CloseAsync(ct);
        return found;
    }

    private async Task<IConnection> ConnectionAsync(CancellationToken ct)
    {
        await PublisherAsync(ct);
        return _connection!;
    }

    /// <summary>For the readiness check: the producer connection is open (connecting if needed).</summary>
    public async Task<bool> IsConnectedAsync(CancellationToken ct) => (await ConnectionAsync(ct)).IsOpen;

    /// <summary>The broker address without credentials, for logs.</summary>
    private string RedactedUrl
    {
        get
        {
            var url = new Uri(Options.RabbitMq.Url);
            return $"{url.Scheme}://{url.Host}:{url.Port}{url.AbsolutePath}";
        }
    }

    internal static int AttemptOf(IReadOnlyBasicProperties properties) =>
        properties.Headers?.TryGetValue(AttemptHeader, out var value) == true ? value switch
        {
            int i => i,
            long l => (int)l,
            short s => s,
            byte b => b,
            byte[] text when int.TryParse(Encoding.UTF8.GetString(text), out var parsed) => parsed,
            _ => 1,
        } : 1;

    internal static string? HeaderText(IReadOnlyBasicProperties properties, string name) =>
        properties.Headers?.TryGetValue(name, out var value) == true ? value switch
        {
            byte[] bytes => Encoding.UTF8.GetString(bytes),
            string text => text,
            null => null,
            var other => Convert.ToString(other, System.Globalization.CultureInfo.InvariantCulture),
        } : null;

    internal static string KindOf(string queue, IReadOnlyBasicProperties properties, string routingKey) =>
        queue == TaskQueues.Events
            ? HeaderText(properties, RoutingKeyHeader) ?? properties.Type ?? routingKey
            : properties.Type ?? "";

    private static DeadLetter ToDeadLetter(string queue, IReadOnlyBasicProperties properties, string routingKey, ReadOnlyMemory<byte> body)
    {
        var failedAt = HeaderText(properties, FailedAtHeader) is { } text && DateTimeOffset.TryParse(text, System.Globalization.CultureInfo.InvariantCulture,
            System.Globalization.DateTimeStyles.AssumeUniversal, out var parsed) ? parsed : (DateTimeOffset?)null;
        return new DeadLetter(
            Guid.TryParse(properties.MessageId, out var id) ? id : Guid.Empty,
            queue,
            KindOf(queue, properties, routingKey),
            Encoding.UTF8.GetString(body.Span),
            AttemptOf(properties),
            HeaderText(properties, ErrorHeader),
            DateTimeOffset.FromUnixTimeSeconds(properties.Timestamp.UnixTime),
            failedAt);
    }

    public async ValueTask DisposeAsync()
    {
        // Registered as itself and as ITaskTransport, so the container calls this twice.
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        if (_publisher is not null) await _publisher.DisposeAsync();
        if (_connection is not null)
        {
            await _connection.CloseAsync(TimeSpan.FromSeconds(5));
            await _connection.DisposeAsync();
        }
        _connecting.Dispose();
        _publishing.Dispose();
    }

    /// <summary>Acks on the consuming channel; re-publishes (retry, dead letter) on a confirmed publisher channel.</summary>
    private sealed class Settler(RabbitMqTaskTransport transport, IChannel channel, IChannel publisher)
    {
        private readonly SemaphoreSlim _publishing = new(1, 1);
        private readonly ConcurrentDictionary<string, Task> _retryQueues = new(StringComparer.Ordinal);

        public RabbitMqTaskTransport Transport => transport;

        public Task AckAsync(ulong tag) => Guard(() => channel.BasicAckAsync(tag, multiple: false).AsTask(), "ack");

        public Task NackAsync(ulong tag) => Guard(() => channel.BasicNackAsync(tag, multiple: false, requeue: true).AsTask(), "requeue");

        public async Task RepublishAsync(ulong tag, string routingKey, BasicProperties properties, ReadOnlyMemory<byte> body, Func<Task>? declare = null) =>
            await Guard(async () =>
            {
                using var timeout = new CancellationTokenSource(SettleTimeout);
                await _publishing.WaitAsync(timeout.Token);
                try
                {
                    if (declare is not null) await declare();
                    await publisher.BasicPublishAsync("", routingKey, mandatory: true, properties, body, timeout.Token);
                }
                finally
                {
                    _publishing.Release();
                }
                // Only after the broker confirmed the copy: a crash in between delivers the task twice, never zero times.
                await channel.BasicAckAsync(tag, multiple: false, timeout.Token);
            }, "re-publish");

        /// <summary>Declared once per delay: messages wait <paramref name="delay"/>, then dead-letter back to <paramref name="queue"/>.</summary>
        public Task EnsureRetryQueueAsync(string queue, TimeSpan delay)
        {
            var name = RetryQueue(queue, delay);
            return _retryQueues.GetOrAdd(name, n => publisher.QueueDeclareAsync(n, durable: true, exclusive: false, autoDelete: false, arguments: Quorum(new Dictionary<string, object?>
            {
                ["x-message-ttl"] = (long)delay.TotalMilliseconds,
                ["x-dead-letter-exchange"] = "",
                ["x-dead-letter-routing-key"] = queue,
            })));
        }

        private async Task Guard(Func<Task> action, string what)
        {
            try
            {
                await action();
            }
            catch (Exception ex)
            {
                // The channel or connection is gone: the broker redelivers the unacked message, so nothing is lost.
                transport.Logger.LogWarning(ex, "Could not {What} a RabbitMQ delivery; the broker will deliver it again", what);
            }
        }
    }

    private sealed class Delivery : TaskDelivery
    {
        private readonly Settler _settler;
        private readonly ulong _tag;
        private readonly IReadOnlyBasicProperties _properties;
        private readonly byte[] _body;

        public Delivery(Settler settler, string queue, ulong tag, string routingKey, IReadOnlyBasicProperties properties, byte[] body)
        {
            _settler = settler;
            _tag = tag;
            _properties = properties;
            _body = body;
            Queue = queue;
            var id = Guid.TryParse(properties.MessageId, out var parsed) ? parsed : Guid.Empty;
            var enqueuedAt = properties.IsTimestampPresent() ? DateTimeOffset.FromUnixTimeSeconds(properties.Timestamp.UnixTime) : settler.Transport.Time.GetUtcNow();
            Message = new TaskMessage(id, KindOf(queue, properties, routingKey), Encoding.UTF8.GetString(body), AttemptOf(properties), enqueuedAt);
        }

        public override TaskMessage Message { get; }

        public override string Queue { get; }

        public override Task AckAsync() => _settler.AckAsync(_tag);

        public override Task ReleaseAsync() => _settler.NackAsync(_tag);

        public override async Task RetryAsync(TimeSpan delay, string error)
        {
            var properties = Copy(Message.Attempt + 1);
            properties.Headers![ErrorHeader] = Truncate(error);
            await _settler.RepublishAsync(_tag, RetryQueue(Queue, delay), properties, _body, () => _settler.EnsureRetryQueueAsync(Queue, delay));
        }

        public override async Task DeadLetterAsync(string error)
        {
            var properties = Copy(Message.Attempt);
            properties.Headers![ErrorHeader] = Truncate(error);
            properties.Headers[FailedAtHeader] = _settler.Transport.Time.GetUtcNow().ToString("O", System.Globalization.CultureInfo.InvariantCulture);
            properties.Headers[OriginHeader] = Queue;
            await _settler.RepublishAsync(_tag, TaskQueues.DeadLetter(Queue), properties, _body);
        }

        private BasicProperties Copy(int attempt)
        {
            var properties = new BasicProperties
            {
                Persistent = true,
                MessageId = _properties.MessageId,
                Type = _properties.Type,
                ContentType = _properties.ContentType,
                Timestamp = _properties.Timestamp,
                Headers = new Dictionary<string, object?> { [AttemptHeader] = attempt },
            };
            // Events keep their routing key through retry queues, whose dead-lettering replaces it.
            if (Queue == TaskQueues.Events) properties.Headers[RoutingKeyHeader] = Message.Kind;
            return properties;
        }

        private static string Truncate(string error) => error.Length <= 4000 ? error : error[..3997] + "...";
    }
}

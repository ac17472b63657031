using System.Threading.RateLimiting;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using StackExchange.Redis;
using Sutazai.Server.Configuration;

namespace Sutazai.Server.Hosting;

/// <summary><c>Sutazai:Redis</c>: the Redis server that carries live events between nodes.</summary>
public sealed class RedisOptions
{
    public const string Section = "Sutazai:Redis";

    /// <summary>StackExchange.Redis configuration string (<c>host:port[,password=…][,ssl=true]</c>); empty keeps events in this process.</summary>
    public string Connection { get; set; } = "";

    /// <summary>Prefix of the pub/sub channel names, so several deployments can share one Redis.</summary>
    public string ChannelPrefix { get; set; } = "sutazai";

    public bool IsConfigured => !string.IsNullOrWhiteSpace(Connection);
}

/// <summary>
/// Live events between the nodes of one deployment (the WebSocket fan-out): what one node publishes on a topic, every
/// other node's subscribers receive, in publication order. Events are best-effort — anything a client must not miss
/// is stored first (run steps, messages) and readable through the API; the bus only makes it arrive at once.
/// </summary>
public interface IClusterBus
{
    /// <summary>This process's id on the bus (a node never receives its own events back).</summary>
    string NodeId { get; }

    /// <summary>False for the in-process bus: publishers can skip serializing what nobody else would receive.</summary>
    bool ReachesOtherNodes { get; }

    /// <summary>Sends <paramref name="payload"/> to the other nodes; never blocks and never throws.</summary>
    void Publish(string topic, string payload);

    /// <summary>Calls <paramref name="handler"/> for each event other nodes publish on <paramref name="topic"/>, one at a time.</summary>
    IDisposable Subscribe(string topic, Action<string> handler);
}

/// <summary>One node, nothing to reach: events stay in the process (the embedded default).</summary>
public sealed class LocalClusterBus : IClusterBus
{
    public string NodeId { get; } = Guid.NewGuid().ToString("N");

    public bool ReachesOtherNodes => false;

    public void Publish(string topic, string payload)
    {
    }

    public IDisposable Subscribe(string topic, Action<string> handler) => new Unsubscriber(() => { });

    internal sealed class Unsubscriber(Action dispose) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) dispose();
        }
    }
}

/// <summary>
/// Redis pub/sub: channel <c>{prefix}:{topic}</c>, message <c>{nodeId}|{payload}</c>. Each subscription reads its own
/// ordered message queue. The connection retries by itself (<c>abortConnect=false</c>), so a node starts while Redis is
/// down and catches up when it returns; events published meanwhile are lost (the stores still hold what matters).
/// </summary>
public sealed class RedisClusterBus : IClusterBus, IDisposable
{
    private readonly Lazy<ConnectionMultiplexer> _redis;
    private readonly ILogger<RedisClusterBus> _logger;
    private long _lastPublishWarning = long.MinValue / 2;

    public RedisClusterBus(RedisOptions options, ILogger<RedisClusterBus> logger)
    {
        var configuration = ConfigurationOptions.Parse(options.Connection);
        configuration.AbortOnConnectFail = false;
        configuration.ClientName ??= "sutazai";
        _redis = new Lazy<ConnectionMultiplexer>(() => ConnectionMultiplexer.Connect(configuration));
        Prefix = options.ChannelPrefix;
        _logger = logger;
    }

    public string NodeId { get; } = Guid.NewGuid().ToString("N");

    public bool ReachesOtherNodes => true;

    /// <summary><c>Sutazai:Redis:ChannelPrefix</c>: also prefixes the keys other Redis users of this deployment write (rate limits).</summary>
    public string Prefix { get; }

    /// <summary>The shared connection (also used by the health check).</summary>
    public ConnectionMultiplexer Connection => _redis.Value;

    private RedisChannel Channel(string topic) => RedisChannel.Literal($"{Prefix}:{topic}");

    public void Publish(string topic, string payload)
    {
        try
        {
            Connection.GetSubscriber().Publish(Channel(topic), $"{NodeId}|{payload}", CommandFlags.FireAndForget);
        }
        catch (RedisException ex)
        {
            // At most one warning every 30 s: while Redis is down every token would otherwise log one.
            var now = Environment.TickCount64;
            var last = Interlocked.Read(ref _lastPublishWarning);
            if (now - last >= 30_000 && Interlocked.CompareExchange(ref _lastPublishWarning, now, last) == last)
                _logger.LogWarning("Publishing on Redis channel {Topic} failed (events to other nodes are dropped until Redis is back): {Message}", topic, ex.Message);
        }
    }

    public IDisposable Subscribe(string topic, Action<string> handler)
    {
        ChannelMessageQueue queue;
        try
        {
            queue = Connection.GetSubscriber().Subscribe(Channel(topic)); // confirmed: events published from now on arrive
        }
        catch (RedisConnectionException ex)
        {
            // Redis is down: register anyway; the multiplexer subscribes when it connects (and after every reconnect).
            _logger.LogWarning("Redis is unreachable; channel {Topic} will be subscribed when it connects: {Message}", topic, ex.Message);
            queue = Connection.GetSubscriber().Subscribe(Channel(topic), CommandFlags.FireAndForget);
        }
        var own = NodeId + "|";
        queue.OnMessage(message =>
        {
            var text = (string?)message.Message;
            if (text is null || text.StartsWith(own, StringComparison.Ordinal)) return;
            var bar = text.IndexOf('|', StringComparison.Ordinal);
            if (bar < 0) return;
            try
            {
                handler(text[(bar + 1)..]);
            }
            catch (Exception ex)
            {
                _logger.LogWarning(ex, "A handler of Redis channel {Topic} failed", topic);
            }
        });
        return new LocalClusterBus.Unsubscriber(() => queue.Unsubscribe(CommandFlags.FireAndForget));
    }

    public void Dispose()
    {
        if (_redis.IsValueCreated) _redis.Value.Dispose();
    }
}

/// <summary>Healthy while Redis answers PING; degraded (still ready) while it does not.</summary>
public sealed class RedisHealthCheck(RedisClusterBus bus) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var latency = await bus.Connection.GetDatabase().PingAsync().WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);
            return HealthCheckResult.Healthy($"PING {latency.TotalMilliseconds:0.0} ms");
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // Degraded, not down: the node serves on; only live events from other nodes wait for Redis.
            var endpoints = string.Join(", ", bus.Connection.GetEndPoints().Select(e => e.ToString()));
            return HealthCheckResult.Degraded($"Redis at {endpoints} is unreachable ({ex.Message}); live events from other nodes are not delivered.");
        }
    }
}

public static class ClusterBusSetup
{
    /// <summary><see cref="RedisClusterBus"/> when <c>Sutazai:Redis:Connection</c> is set, else <see cref="LocalClusterBus"/>.</summary>
    public static WebApplicationBuilder AddSutazaiClusterBus(this WebApplicationBuilder builder)
    {
        var redis = builder.Configuration.Read<RedisOptions>(RedisOptions.Section);
        if (redis.IsConfigured)
        {
            builder.Services.AddSingleton(sp => new RedisClusterBus(redis, sp.GetRequiredService<ILogger<RedisClusterBus>>()));
            builder.Services.AddSingleton<IClusterBus>(sp => sp.GetRequiredService<RedisClusterBus>());
            builder.Services.AddHealthChecks().AddCheck<RedisHealthCheck>("redis", tags: ["ready"]);
        }
        else
        {
            builder.Services.AddSingleton<IClusterBus, LocalClusterBus>();
        }
        return builder;
    }
}

/// <summary>
/// A rate limit counted in Redis for every node, that falls back to this node's own count while Redis cannot be
/// reached — a Redis outage must not lock everyone out of signing in.
/// </summary>
public sealed class SharedRateLimiter(RateLimiter shared, RateLimiter local, ILogger<SharedRateLimiter> logger) : RateLimiter
{
    public override TimeSpan? IdleDuration => shared.IdleDuration;

    public override RateLimiterStatistics? GetStatistics() => shared.GetStatistics();

    // The rate-limiting middleware tries this first and goes on to AcquireAsync when it is refused.
    protected override RateLimitLease AttemptAcquireCore(int permitCount)
    {
        try
        {
            return shared.AttemptAcquire(permitCount);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return local.AttemptAcquire(permitCount);
        }
    }

    protected override async ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken)
    {
        try
        {
            return await shared.AcquireAsync(permitCount, cancellationToken);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning("Redis rate limit unavailable, counting on this node: {Message}", ex.Message);
            return await local.AcquireAsync(permitCount, cancellationToken);
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            shared.Dispose();
            local.Dispose();
        }
        base.Dispose(disposing);
    }
}

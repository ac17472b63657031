using System.Text.Json;
using Sutazai.Inference;
using Sutazai.Inference.Pull;
using Sutazai.Server.Inference;
using Sutazai.Server.Knowledge;
using Sutazai.Server.Tasks;

namespace Sutazai.Server.Hosting;

/// <summary>
/// What changed in the deployment, told to everyone who cares. Each event goes twice: durably onto
/// <c>system.events</c> (routing key = the event, payload JSON; for consumers that must not miss one, and visible in
/// RabbitMQ), and at once to every other node over the cluster bus (Redis), where <see cref="LifecycleSubscriptions"/>
/// acts on it: drops a cached setting, re-lists models, brings the vector index up to date.
/// </summary>
public sealed class LifecycleEvents(ITaskQueue queue, IClusterBus bus, ILogger<LifecycleEvents> logger)
{
    public const string BusTopic = "lifecycle";

    public const string DocumentIndexed = "document.indexed";
    public const string DocumentDeleted = "document.deleted";
    public const string ModelPulled = "model.pulled";
    public const string ModelDeleted = "model.deleted";
    public const string SettingsChanged = "settings.changed";
    public const string UserDeactivated = "user.deactivated";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Raised for every event, this node's own and other nodes' (key, payload JSON).</summary>
    public event Action<string, string>? Received;

    /// <summary>Publishes an event; a failure to reach the queue is logged, never thrown at the caller whose change is already stored.</summary>
    public async Task PublishAsync(string key, object payload, CancellationToken ct = default)
    {
        var json = JsonSerializer.Serialize(payload, Json);
        try
        {
            await queue.PublishEventAsync(key, json, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogWarning(ex, "Could not put the {Event} event on system.events: {Message}", key, ex.Message);
        }
        bus.Publish(BusTopic, key + "|" + json);
        Deliver(key, json);
    }

    /// <summary>Publishes without waiting (for synchronous callers such as event handlers).</summary>
    public void Post(string key, object payload) => _ = PublishAsync(key, payload, CancellationToken.None);

    internal void Deliver(string key, string json)
    {
        try
        {
            Received?.Invoke(key, json);
        }
        catch (Exception ex)
        {
            logger.LogWarning(ex, "A handler of the {Event} event failed: {Message}", key, ex.Message);
        }
    }
}

/// <summary>
/// This node's reactions to lifecycle events from any node: a changed setting is read again, a pulled or deleted model
/// re-lists the catalogue, an indexed or deleted document syncs the embedded vector index now instead of at its next
/// interval. Also turns this node's completed pulls into <c>model.pulled</c> events.
/// </summary>
public sealed class LifecycleSubscriptions(LifecycleEvents events, IClusterBus bus, SystemSettings settings, ModelCatalog catalog,
    IngestionWorker ingestion, PullService pulls) : IHostedService
{
    private IDisposable? _subscription;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        events.Received += React;
        pulls.Pulled += OnPulled;
        settings.Changed += OnSettingChanged;
        _subscription = bus.Subscribe(LifecycleEvents.BusTopic, message =>
        {
            var bar = message.IndexOf('|', StringComparison.Ordinal);
            if (bar > 0) events.Deliver(message[..bar], message[(bar + 1)..]);
        });
        return Task.CompletedTask;
    }

    private void OnPulled(string model) => events.Post(LifecycleEvents.ModelPulled, new { model });

    private void OnSettingChanged(string key) => events.Post(LifecycleEvents.SettingsChanged, new { key });

    private void React(string key, string json)
    {
        switch (key)
        {
            case LifecycleEvents.SettingsChanged:
                using (var document = JsonDocument.Parse(json))
                    if (document.RootElement.TryGetProperty("key", out var setting) && setting.GetString() is { } name) settings.Forget(name);
                catalog.Invalidate();
                break;
            case LifecycleEvents.ModelPulled or LifecycleEvents.ModelDeleted:
                catalog.Invalidate();
                break;
            case LifecycleEvents.DocumentIndexed or LifecycleEvents.DocumentDeleted:
                ingestion.Notify();
                break;
        }
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        events.Received -= React;
        pulls.Pulled -= OnPulled;
        settings.Changed -= OnSettingChanged;
        _subscription?.Dispose();
        return Task.CompletedTask;
    }
}

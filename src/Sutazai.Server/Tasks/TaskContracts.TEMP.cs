namespace Sutazai.Server.Tasks;
// TEMPORARY until the queue branch merges (replaced by its transports).
public sealed record TaskMessage(Guid Id, string Kind, string Payload, int Attempt, DateTimeOffset EnqueuedAt);
public interface ITaskQueue
{
    Task<Guid> EnqueueAsync(string kind, string payload, CancellationToken ct = default);
    Task PublishEventAsync(string routingKey, string payload, CancellationToken ct = default);
}
public interface ITaskHandler
{
    string Kind { get; }
    Task HandleAsync(TaskMessage message, CancellationToken ct);
}
public sealed class InProcessTaskQueue(IServiceScopeFactory scopes, ILogger<InProcessTaskQueue> logger) : ITaskQueue
{
    public Task<Guid> EnqueueAsync(string kind, string payload, CancellationToken ct = default)
    {
        var id = Guid.NewGuid();
        _ = Task.Run(async () =>
        {
            await using var scope = scopes.CreateAsyncScope();
            var handler = scope.ServiceProvider.GetServices<ITaskHandler>().First(h => h.Kind == kind);
            try { await handler.HandleAsync(new TaskMessage(id, kind, payload, 1, DateTimeOffset.UtcNow), CancellationToken.None); }
            catch (Exception ex) { logger.LogError(ex, "task failed"); }
        }, CancellationToken.None);
        return Task.FromResult(id);
    }
    public Task PublishEventAsync(string routingKey, string payload, CancellationToken ct = default) => Task.CompletedTask;
}

using System.Diagnostics;
using Microsoft.Extensions.Options;
using Sutazai.Server.Hosting;

namespace Sutazai.Server.Tasks;

/// <summary>
/// Consumes the configured transport and dispatches each delivery by kind to its <see cref="ITaskHandler"/> (tasks)
/// or to every matching <see cref="ISystemEventHandler"/> (events), in a fresh DI scope. Success acks; a throw retries
/// after exponential backoff; the MaxAttempts-th failure, an unknown kind or a task redelivered too often (its workers
/// kept dying) dead-letters it. Runs in the <c>all</c> and <c>worker</c> roles.
/// </summary>
public sealed class TaskWorker(
    ITaskTransport transport,
    IServiceScopeFactory scopes,
    IOptions<TaskOptions> options,
    SutazaiMetrics metrics,
    Warmup warmup,
    ILogger<TaskWorker> logger) : BackgroundService
{
    private static readonly TimeSpan DepthInterval = TimeSpan.FromSeconds(15);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!await warmup.WaitAsync(stoppingToken)) return;
        logger.LogInformation("Task worker consuming from the {Transport} transport with concurrency {Concurrency}", transport.Name, options.Value.Concurrency);
        var depth = RefreshDepthAsync(stoppingToken);
        await transport.ConsumeAsync(DispatchAsync, stoppingToken);
        await depth;
    }

    public async Task DispatchAsync(TaskDelivery delivery, CancellationToken stop)
    {
        var message = delivery.Message;
        var maxAttempts = options.Value.MaxAttempts;
        var started = Stopwatch.GetTimestamp();
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            if (message.Attempt > maxAttempts)
            {
                await DeadLetterAsync(delivery, $"Delivered {message.Attempt} times without finishing (the workers holding it stopped or crashed); the limit is {maxAttempts}.");
                return;
            }
            if (delivery.Queue == TaskQueues.Events)
            {
                foreach (var handler in scope.ServiceProvider.GetServices<ISystemEventHandler>().Where(h => TopicPattern.Matches(h.Pattern, message.Kind)))
                    await handler.HandleAsync(message, stop);
            }
            else
            {
                var handler = scope.ServiceProvider.GetServices<ITaskHandler>().FirstOrDefault(h => string.Equals(h.Kind, message.Kind, StringComparison.Ordinal));
                if (handler is null)
                {
                    await DeadLetterAsync(delivery, $"No handler is registered for task kind '{message.Kind}'.");
                    return;
                }
                await handler.HandleAsync(message, stop);
            }
            await delivery.AckAsync();
            metrics.TaskProcessed(delivery.Queue, message.Kind, "succeeded", Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            await delivery.ReleaseAsync();
            metrics.TaskProcessed(delivery.Queue, message.Kind, "released", Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
        catch (Exception ex)
        {
            metrics.TaskFailed(delivery.Queue, message.Kind);
            var error = $"{ex.GetType().Name}: {ex.Message}";
            if (message.Attempt >= maxAttempts)
            {
                logger.LogError(ex, "Task {Id} ({Kind}) failed on attempt {Attempt} of {Max}; dead-lettered", message.Id, message.Kind, message.Attempt, maxAttempts);
                await DeadLetterAsync(delivery, $"Failed {message.Attempt} times; last error: {error}");
                return;
            }
            var delay = options.Value.Backoff(message.Attempt);
            logger.LogWarning(ex, "Task {Id} ({Kind}) failed on attempt {Attempt} of {Max}; retrying in {Delay}", message.Id, message.Kind, message.Attempt, maxAttempts, delay);
            await delivery.RetryAsync(delay, error);
            metrics.TaskProcessed(delivery.Queue, message.Kind, "retried", Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    private async Task DeadLetterAsync(TaskDelivery delivery, string error)
    {
        logger.LogError("Task {Id} ({Kind}) dead-lettered: {Error}", delivery.Message.Id, delivery.Message.Kind, error);
        await delivery.DeadLetterAsync(error);
        metrics.TaskProcessed(delivery.Queue, delivery.Message.Kind, "dead", 0);
    }

    /// <summary>Feeds the queue-depth gauge.</summary>
    private async Task RefreshDepthAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                metrics.SetTaskQueueDepth((await transport.GetStatsAsync(stop)).Counts);
                await Task.Delay(DepthInterval, stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                logger.LogWarning(ex, "Reading the task queue depth failed");
                await Task.Delay(DepthInterval, stop).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
    }
}

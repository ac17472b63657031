using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Sutazai.Server.Hosting;

/// <summary>
/// One piece of start-up work that must finish before this node serves requests, run once the schema is there: e.g.
/// settling replies the previous process left unfinished before a new reply can start. Steps run in registration order.
/// </summary>
public interface IStartupStep
{
    Task RunAsync(CancellationToken cancellationToken);
}

/// <summary>
/// The database work a node does before it serves: migrations (in the worker role, waiting for an <c>all</c> or
/// <c>api</c> node to apply them), then every <see cref="IStartupStep"/>. It runs in the background, so the process
/// listens at once: <c>/health</c> (liveness) answers while it runs, <c>/health/ready</c> says what is still warming up
/// (503), and every other request waits for it. If it fails the server stops with exit code 1 and waiting requests get
/// 503 naming the failure.
/// </summary>
public sealed class Warmup
{
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile string _stage = "database migrations";

    /// <summary>Completes when the node may serve; faults with the start-up failure.</summary>
    public Task Done => _done.Task;

    /// <summary>What is still running (<c>null</c> once done or failed).</summary>
    public string? Stage => _done.Task.IsCompleted ? null : _stage;

    public Exception? Failure => _done.Task.Exception?.InnerException;

    internal void Enter(string stage) => _stage = stage;

    internal void Complete() => _done.TrySetResult();

    internal void Fail(Exception error) => _done.TrySetException(error);

    /// <summary>For background services: waits until the node may serve; false when start-up failed or the host is stopping.</summary>
    public async Task<bool> WaitAsync(CancellationToken cancellationToken)
    {
        try
        {
            await Done.WaitAsync(cancellationToken);
            return true;
        }
        catch (Exception) when (Done.IsFaulted || cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }
}

/// <summary>The readiness check for <see cref="Warmup"/>: unhealthy while it runs, naming what it waits for.</summary>
public sealed class WarmupHealthCheck(Warmup warmup) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(warmup.Done.IsCompletedSuccessfully ? HealthCheckResult.Healthy("Started.")
            : warmup.Failure is { } failure ? HealthCheckResult.Unhealthy($"Start-up failed: {failure.Message}")
            : HealthCheckResult.Unhealthy($"Warming up: {warmup.Stage}."));
}

public static class WarmupGate
{
    /// <summary>
    /// Holds every request but the health probes and <c>/metrics</c> until <see cref="Warmup"/> is done (the client
    /// only sees a slower first answer); after a failed start-up they get 503 with the reason.
    /// </summary>
    public static IApplicationBuilder UseWarmupGate(this IApplicationBuilder app)
    {
        var warmup = app.ApplicationServices.GetRequiredService<Warmup>();
        return app.Use(async (context, next) =>
        {
            if (HttpMethods.IsGet(context.Request.Method) && context.Request.Path.Equals("/health", StringComparison.Ordinal))
            {
                await TypedResults.Ok(Health.HealthApi.Alive).ExecuteAsync(context);
                return;
            }
            if (!warmup.Done.IsCompletedSuccessfully && !Bypasses(context.Request.Path))
            {
                if (!await warmup.WaitAsync(context.RequestAborted))
                {
                    if (context.RequestAborted.IsCancellationRequested) return;
                    context.Response.Headers.RetryAfter = "30";
                    await TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "The server could not start",
                        detail: $"Start-up failed: {warmup.Failure?.Message}").ExecuteAsync(context);
                    return;
                }
            }
            await next(context);
        });
    }

    private static bool Bypasses(PathString path) =>
        path.Equals("/health", StringComparison.Ordinal) || path.Equals("/health/ready", StringComparison.Ordinal) || path.Equals("/metrics", StringComparison.Ordinal);

    /// <summary>
    /// Adds the middleware <paramref name="configure"/> adds, built on a background thread once the server listens
    /// instead of while the host starts (the first request that needs it waits for the build). For middleware whose
    /// construction is expensive; the order in the pipeline is unchanged.
    /// </summary>
    public static IApplicationBuilder UseDeferred(this IApplicationBuilder app, Action<IApplicationBuilder> configure) =>
        app.Use(next =>
        {
            var branch = new Lazy<RequestDelegate>(() =>
            {
                var inner = app.New();
                configure(inner);
                inner.Run(next);
                return inner.Build();
            }, LazyThreadSafetyMode.ExecutionAndPublication);
            // Built once the server listens (or by the first request that needs it, whichever comes first).
            app.ApplicationServices.GetRequiredService<IHostApplicationLifetime>().ApplicationStarted.Register(() => _ = Task.Run(() => branch.Value));
            return context => branch.Value(context);
        });
}

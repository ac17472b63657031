using System.Text;
using Sutazai.Inference;
using Microsoft.AspNetCore.Http.HttpResults;
using Sutazai.Server.Hosting;
using Sutazai.Server.Identity;

namespace Sutazai.Server.Inference;

public static class GenerateApi
{
    public static IEndpointRouteBuilder MapGenerateApi(this IEndpointRouteBuilder routes)
    {
        routes.MapPost("/api/v1/generate", Generate).WithTags("Inference").RequireAuthorization(ScopePolicies.Inference)
            .RequireRateLimiting(ServiceDefaults.ExpensiveRateLimitPolicy)
            .Accepts<GenerateRequest>("application/json")
            .Produces<GenerateResponse>()
            .WithSummary("Generate text: raw completion of 'prompt' or a chat reply to 'messages'. SSE with Accept: text/event-stream.");
        return routes;
    }

    private static async Task<IResult> Generate(GenerateRequest request, HttpContext http, GenerationRunner runner, GenerationLimiter limiter)
    {
        var errors = runner.Validate(request);
        if (errors.Count > 0) return Problems.Validation(errors);
        using var slot = limiter.TryAcquire(http.User.UserId());
        if (slot is null) return TooManyGenerations(http, limiter);

        var ct = http.RequestAborted;
        var run = await runner.StartAsync(request, ct);
        var text = run.TextAsync(ct).GetAsyncEnumerator(ct);
        try
        {
            // The first step loads the model and reads the prompt: failures there still get a proper status code.
            var hasFirst = await text.MoveNextAsync();
            if (ServerSentEvents.Wanted(http.Request) || request.Stream == true)
                return await StreamAsync(http, run, text, hasFirst);

            var all = new StringBuilder();
            if (hasFirst) all.Append(text.Current);
            while (await text.MoveNextAsync()) all.Append(text.Current);
            return TypedResults.Ok(new GenerateResponse(run.Model.ModelId, run.Model.Provider.Name, all.ToString(), run.FinishReasonName(), run.UsageResponse(), run.Timings()));
        }
        finally
        {
            await text.DisposeAsync();
        }
    }

    /// <summary>429 for a user already running their limit of generations, with when to try again.</summary>
    public static ProblemHttpResult TooManyGenerations(HttpContext http, GenerationLimiter limiter)
    {
        http.Response.Headers.RetryAfter = GenerationLimiter.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Problems.Status(StatusCodes.Status429TooManyRequests, "Too Many Requests", limiter.LimitDetail);
    }

    private static async Task<IResult> StreamAsync(HttpContext http, GenerationRunner.Run run, IAsyncEnumerator<string> text, bool hasFirst)
    {
        var ct = http.RequestAborted;
        var sse = new ServerSentEvents(http.Response);
        sse.Start();
        try
        {
            if (hasFirst)
            {
                await sse.WriteAsync("token", new { content = text.Current }, ct);
                while (await text.MoveNextAsync()) await sse.WriteAsync("token", new { content = text.Current }, ct);
            }
            await sse.WriteAsync("done", new GenerateDone(run.Model.ModelId, run.Model.Provider.Name, run.FinishReasonName(), run.UsageResponse(), run.Timings()), ct);
        }
        catch (Exception ex) when (ex is InferenceUnavailableException or ModelNotFoundException && !ct.IsCancellationRequested)
        {
            await sse.WriteAsync("error", new { status = 503, title = "Service Unavailable", detail = ex.Message }, ct);
        }
        return Results.Empty;
    }
}

using Microsoft.AspNetCore.Http.HttpResults;
using Sutazai.Inference.Pull;
using Sutazai.Server.Identity;

namespace Sutazai.Server.Inference;

public sealed record PullRequest(string? Source);

public sealed record PullStarted(string Id, string Source, PullStatus Status);

public static partial class ModelsApi
{
    private static void MapPulls(RouteGroupBuilder models)
    {
        var pulls = models.MapGroup("").RequireAuthorization(IdentitySetup.AdminPolicy);
        pulls.MapPost("/pull", StartPull)
            .WithSummary("Download a model (admin): hf:owner/repo/file.gguf, an http(s) URL, or an Ollama name (forwarded to Ollama).");
        pulls.MapGet("/pulls", (PullService service) => TypedResults.Ok(service.List())).WithSummary("Every pull since start-up, newest first (admin).");
        pulls.MapGet("/pulls/{id}", GetPull)
            .WithSummary("One pull's status; with Accept: text/event-stream, progress events until it ends (admin).");
    }

    private static async Task<Results<Accepted<PullStarted>, ProblemHttpResult>> StartPull(PullRequest request, PullService service, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(request.Source)) return Problems.Validation("source", "Source is required.");
        try
        {
            var pull = await service.StartAsync(request.Source, ct);
            return TypedResults.Accepted($"/api/v1/models/pulls/{pull.Id}", new PullStarted(pull.Id, pull.Source, pull.Status));
        }
        catch (FormatException ex)
        {
            return Problems.Validation("source", ex.Message);
        }
    }

    private static async Task<IResult> GetPull(string id, HttpContext http, PullService service)
    {
        var pull = service.Get(id);
        if (pull is null) return Problems.NotFound("No pull with that id.");
        if (!ServerSentEvents.Wanted(http.Request)) return TypedResults.Ok(pull);

        var ct = http.RequestAborted;
        var sse = new ServerSentEvents(http.Response);
        sse.Start();
        await foreach (var snapshot in service.WatchAsync(id, ct)!)
        {
            await sse.WriteAsync(snapshot.IsFinished ? snapshot.Status.ToString().ToLowerInvariant() : "progress", snapshot, ct);
        }
        return Results.Empty;
    }
}

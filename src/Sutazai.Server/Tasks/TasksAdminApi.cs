using Microsoft.AspNetCore.Http.HttpResults;
using Sutazai.Server.Identity;

namespace Sutazai.Server.Tasks;

/// <summary>Admin view of the task queue: counts, dead letters with their errors, requeue and delete.</summary>
public static class TasksAdminApi
{
    public const int MaxDeadLetterPage = 500;

    public static IEndpointRouteBuilder MapTasksAdminApi(this IEndpointRouteBuilder routes)
    {
        var admin = routes.MapGroup("/api/v1/admin/tasks").WithTags("Admin").RequireAuthorization(IdentitySetup.AdminPolicy);
        admin.MapGet("", GetStats).WithSummary("Messages in the task queue by status, and per queue.");
        admin.MapGet("/dead", ListDead).WithSummary("Dead-lettered tasks and events with their last error, most recent first.");
        admin.MapPost("/dead/{id:guid}/requeue", Requeue).WithSummary("Put a dead letter back on its queue with a fresh attempt count.");
        admin.MapDelete("/dead/{id:guid}", Delete).WithSummary("Delete a dead letter for good.");
        return routes;
    }

    private static async Task<Ok<TaskQueueStats>> GetStats(ITaskTransport transport, CancellationToken ct) =>
        TypedResults.Ok(await transport.GetStatsAsync(ct));

    private static async Task<Results<Ok<IReadOnlyList<DeadLetter>>, ProblemHttpResult>> ListDead(ITaskTransport transport, int limit = 100, CancellationToken ct = default)
    {
        if (limit is < 1 or > MaxDeadLetterPage) return Problems.Validation("limit", $"limit must be between 1 and {MaxDeadLetterPage}.");
        return TypedResults.Ok(await transport.ListDeadAsync(limit, ct));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> Requeue(Guid id, ITaskTransport transport, CancellationToken ct) =>
        await transport.RequeueDeadAsync(id, ct) ? TypedResults.NoContent() : Problems.NotFound("No dead letter with that id.");

    private static async Task<Results<NoContent, ProblemHttpResult>> Delete(Guid id, ITaskTransport transport, CancellationToken ct) =>
        await transport.DeleteDeadAsync(id, ct) ? TypedResults.NoContent() : Problems.NotFound("No dead letter with that id.");
}

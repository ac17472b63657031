using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;

namespace Sutazai.Server.Hosting;

/// <summary>
/// Writes a ProblemDetails as <c>application/problem+json</c> whatever the request's <c>Accept</c> says. Registered
/// after the framework's writer, so it only answers what that one declines: the API has no other error format, and an
/// error a client cannot negotiate must still be an error, not an unhandled second exception (a 500).
/// </summary>
public sealed class FallbackProblemDetailsWriter(IOptions<ProblemDetailsOptions> options, IOptions<JsonOptions> json) : IProblemDetailsWriter
{
    public bool CanWrite(ProblemDetailsContext context) => true;

    public ValueTask WriteAsync(ProblemDetailsContext context)
    {
        options.Value.CustomizeProblemDetails?.Invoke(context);
        context.ProblemDetails.Status ??= context.HttpContext.Response.StatusCode;
        return new ValueTask(context.HttpContext.Response.WriteAsJsonAsync(context.ProblemDetails, json.Value.SerializerOptions, "application/problem+json", context.HttpContext.RequestAborted));
    }
}

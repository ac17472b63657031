using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Sutazai.Server.Data;

namespace Sutazai.Server.Hosting;

/// <summary>Turns every exception that escapes an endpoint into an RFC 7807 answer with a useful detail.</summary>
public sealed class ProblemDetailsExceptionHandler(IProblemDetailsService problems, ILogger<ProblemDetailsExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        var (status, title, detail) = exception switch
        {
            BadHttpRequestException bad => (bad.StatusCode, TitleFor(bad.StatusCode), DescribeBadRequest(bad)),
            Sutazai.Inference.PromptTooLongException tooLong => (StatusCodes.Status400BadRequest, "Bad Request", tooLong.Message),
            Sutazai.Inference.ModelNotFoundException missing => (StatusCodes.Status404NotFound, "Not Found", missing.Message),
            Sutazai.Inference.NoModelAvailableException none => (StatusCodes.Status503ServiceUnavailable, "Service Unavailable", none.Message),
            Sutazai.Inference.InferenceUnavailableException down => (StatusCodes.Status503ServiceUnavailable, "Service Unavailable", down.Message),
            DbUpdateException db when DbErrors.IsUniqueViolation(db) =>
                (StatusCodes.Status409Conflict, "Conflict", "The object conflicts with one that already exists."),
            OperationCanceledException when httpContext.RequestAborted.IsCancellationRequested =>
                (499, "Client Closed Request", "The client closed the connection."),
            _ => (StatusCodes.Status500InternalServerError, "Internal Server Error",
                "An unexpected error occurred. The request id identifies it in the server log."),
        };
        if (status >= 500) logger.LogError(exception, "Unhandled exception for {Method} {Path}", httpContext.Request.Method, httpContext.Request.Path);
        if (httpContext.Response.HasStarted) return false;
        if (Sutazai.Server.OpenAICompatible.OpenAIEndpointMetadata.Applies(httpContext))
        {
            // The OpenAI-compatible API answers every error in OpenAI's shape, also the unexpected ones.
            if (status == 499) return true; // Nobody is left to read an answer.
            await Sutazai.Server.OpenAICompatible.OpenAIErrors.WriteAsync(httpContext, status, detail);
            return true;
        }

        httpContext.Response.StatusCode = status;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            Exception = exception,
            ProblemDetails = new ProblemDetails { Status = status, Title = title, Detail = detail },
        });
    }

    private static string TitleFor(int status) => status switch
    {
        StatusCodes.Status413PayloadTooLarge => "Payload Too Large",
        StatusCodes.Status415UnsupportedMediaType => "Unsupported Media Type",
        _ => "Bad Request",
    };

    private static string DescribeBadRequest(BadHttpRequestException bad)
    {
        if (bad.StatusCode == StatusCodes.Status413PayloadTooLarge)
            return "The request body is larger than the server accepts.";
        // Name what was wrong with the JSON (path, line, position) without echoing the body.
        return bad.InnerException is JsonException json
            ? $"The request body is not valid JSON for this endpoint: {json.Message}"
            : bad.Message;
    }
}

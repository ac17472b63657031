using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Sutazai.Server.Identity;

/// <summary>Shorthands for the RFC 7807 answers the identity endpoints give.</summary>
public static class Problems
{
    public static ProblemHttpResult Status(int status, string title, string detail, IDictionary<string, object?>? extensions = null) =>
        TypedResults.Problem(new ProblemDetails { Status = status, Title = title, Detail = detail, Extensions = extensions ?? new Dictionary<string, object?>() });

    public static ProblemHttpResult Unauthorized(string detail) => Status(StatusCodes.Status401Unauthorized, "Unauthorized", detail);

    public static ProblemHttpResult Forbidden(string detail, IDictionary<string, object?>? extensions = null) =>
        Status(StatusCodes.Status403Forbidden, "Forbidden", detail, extensions);

    public static ProblemHttpResult Conflict(string detail) => Status(StatusCodes.Status409Conflict, "Conflict", detail);

    public static ProblemHttpResult NotFound(string detail) => Status(StatusCodes.Status404NotFound, "Not Found", detail);

    /// <summary>422 naming each field that is wrong.</summary>
    public static ProblemHttpResult Validation(IDictionary<string, string[]> errors) =>
        TypedResults.Problem(new HttpValidationProblemDetails(errors)
        {
            Status = StatusCodes.Status422UnprocessableEntity,
            Title = "One or more fields are invalid.",
            Detail = "See 'errors' for each field.",
        });

    public static ProblemHttpResult Validation(string field, string message) =>
        Validation(new Dictionary<string, string[]> { [field] = [message] });
}

using System.Text.Json;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Sutazai.Inference;
using Sutazai.Server.Identity;

namespace Sutazai.Server.OpenAICompatible;

/// <summary>Marks the endpoints that answer errors in OpenAI's shape instead of RFC 7807.</summary>
public sealed class OpenAIEndpointMetadata
{
    public static OpenAIEndpointMetadata Instance { get; } = new();

    public static bool Applies(HttpContext context) => context.GetEndpoint()?.Metadata.GetMetadata<OpenAIEndpointMetadata>() is not null;
}

/// <summary>OpenAI's error answer: <c>{"error": {"message", "type", "param", "code"}}</c> with a matching status.</summary>
public static class OpenAIErrors
{
    public const string InvalidRequest = "invalid_request_error";
    public const string Authentication = "authentication_error";
    public const string Permission = "permission_error";
    public const string Server = "server_error";
    public const string RateLimit = "rate_limit_error";

    public static IResult Result(int status, string message, string type, string? param = null, string? code = null) =>
        TypedResults.Json(new OpenAIErrorBody(new OpenAIError(message, type, param, code)), OpenAIJson.Options, statusCode: status);

    public static IResult BadRequest(string message, string? param, string? code = null) =>
        Result(StatusCodes.Status400BadRequest, message, InvalidRequest, param, code);

    /// <summary>The answer for an exception an inference call may throw, or null for one that is not expected.</summary>
    public static IResult? FromException(Exception exception) => exception switch
    {
        ModelNotFoundException missing => Result(StatusCodes.Status404NotFound,
            $"The model '{missing.ModelId}' does not exist. GET /v1/models lists the models you can use.", InvalidRequest, "model", "model_not_found"),
        NoModelAvailableException none => Result(StatusCodes.Status503ServiceUnavailable, none.Message, Server, null, "no_model_available"),
        InferenceUnavailableException down => Result(StatusCodes.Status503ServiceUnavailable, down.Message, Server, null, "service_unavailable"),
        EmbeddingsNotSupportedException unsupported => BadRequest(unsupported.Message, "model", "embeddings_not_supported"),
        InvalidInferenceInputException invalid => BadRequest(invalid.Message, "input"),
        PromptTooLongException tooLong => BadRequest(tooLong.Message, "messages", "context_length_exceeded"),
        _ => null,
    };

    /// <summary>The error for a body that is not JSON (<paramref name="syntax"/>) or has a field of the wrong type (<c>param</c> names it).</summary>
    public static IResult MalformedJson(JsonException exception, bool syntax)
    {
        if (syntax)
        {
            var where = exception.LineNumber is { } line ? $" (line {line + 1}, position {exception.BytePositionInLine + 1})" : "";
            return BadRequest($"The request body is not valid JSON{where}.", null, "invalid_json");
        }
        var path = exception.Path is { Length: > 2 } p && p.StartsWith("$.", StringComparison.Ordinal) ? p[2..] : null;
        return BadRequest(path is null ? "The request body does not have the expected shape." : $"'{path}' has the wrong type.", path, "invalid_json");
    }

    public static string TypeFor(int status) => status switch
    {
        StatusCodes.Status401Unauthorized => Authentication,
        StatusCodes.Status403Forbidden => Permission,
        StatusCodes.Status429TooManyRequests => RateLimit,
        >= 500 => Server,
        _ => InvalidRequest,
    };

    public static Task WriteAsync(HttpContext context, int status, string message, string? param = null, string? code = null)
    {
        context.Response.StatusCode = status;
        return context.Response.WriteAsJsonAsync(new OpenAIErrorBody(new OpenAIError(message, TypeFor(status), param, code)), OpenAIJson.Options, context.RequestAborted);
    }
}

/// <summary>
/// 401 and 403 on the /v1 endpoints in OpenAI's shape (<c>invalid_api_key</c>, <c>insufficient_scope</c>), saying why
/// the credential failed; every other endpoint keeps SutazAI's behaviour (<see cref="ScopeAuthorizationResultHandler"/>:
/// ProblemDetails, insufficient_scope for a key without the route's scope).
/// </summary>
public sealed class OpenAIAuthorizationResultHandler(ScopeAuthorizationResultHandler fallback) : IAuthorizationMiddlewareResultHandler
{
    public async Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        if (!OpenAIEndpointMetadata.Applies(context) || !(authorizeResult.Challenged || authorizeResult.Forbidden))
        {
            await fallback.HandleAsync(next, context, policy, authorizeResult);
            return;
        }

        if (authorizeResult.Forbidden)
        {
            if (InsufficientScope.Explain(authorizeResult) is { } why)
                await OpenAIErrors.WriteAsync(context, StatusCodes.Status403Forbidden, why.Detail, code: InsufficientScope.Code);
            else
                await OpenAIErrors.WriteAsync(context, StatusCodes.Status403Forbidden, "This credential is not allowed to use this endpoint.", code: "forbidden");
            return;
        }

        var token = ApiKeyAuthenticationHandler.BearerToken(context.Request);
        string message;
        if (string.IsNullOrEmpty(token))
        {
            message = "You didn't provide an API key. Send it as 'Authorization: Bearer sk-sz-…'; create one with POST /api/v1/keys.";
        }
        else
        {
            // The handler caches its result per request, so this reads why the credential failed without a second lookup.
            var result = await context.AuthenticateAsync();
            var isApiKey = ApiKeyAuthenticationHandler.Select(context) == ApiKeyAuthenticationHandler.SchemeName;
            message = isApiKey && result.Failure is { } failure
                ? failure.Message
                : isApiKey ? "The API key is not valid." : "The access token is invalid, expired or revoked.";
        }
        context.Response.Headers.WWWAuthenticate = "Bearer";
        await OpenAIErrors.WriteAsync(context, StatusCodes.Status401Unauthorized, message, code: "invalid_api_key");
    }
}

using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.Options;

namespace Sutazai.Server.Identity;

/// <summary>
/// Authenticates <c>Authorization: Bearer sk-…</c> with a per-user API key. The default scheme is a policy scheme
/// (<see cref="SelectorScheme"/>) that forwards such requests here and every other bearer token to JwtBearer, so each
/// <c>RequireAuthorization()</c> accepts both credential types through the one <see cref="CredentialValidator"/>.
/// </summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string SelectorScheme = "Bearer-or-ApiKey";

    /// <summary>Tokens starting with this go to the API-key handler (the rest are JWTs).</summary>
    public const string TokenMarker = "sk-";

    /// <summary>The bearer token of a request, or null when there is none.</summary>
    public static string? BearerToken(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return header["Bearer ".Length..].Trim();
        // WebSocket handshakes from browsers carry the credential in the query string (see JwtBearer's OnMessageReceived).
        return request.Path.StartsWithSegments("/ws") && request.Query.TryGetValue("access_token", out var query) ? query.ToString() : null;
    }

    /// <summary>The scheme the policy scheme forwards a request to.</summary>
    public static string Select(HttpContext context) =>
        BearerToken(context.Request)?.StartsWith(TokenMarker, StringComparison.Ordinal) == true ? SchemeName : JwtBearerDefaults.AuthenticationScheme;

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var token = BearerToken(Request);
        if (string.IsNullOrEmpty(token)) return AuthenticateResult.NoResult();

        var services = Context.RequestServices;
        var lookup = await services.GetRequiredService<ApiKeyService>().AuthenticateAsync(token, Scheme.Name, Context.RequestAborted);
        if (lookup is ApiKeyLookup.Invalid invalid) return AuthenticateResult.Fail(invalid.Reason);
        var principal = ((ApiKeyLookup.Valid)lookup).Principal;

        var failure = await services.GetRequiredService<CredentialValidator>().ValidateAsync(principal, Context.RequestAborted);
        if (failure is not null) return AuthenticateResult.Fail(failure);
        return AuthenticateResult.Success(new AuthenticationTicket(principal, Scheme.Name));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.WWWAuthenticate = "Bearer error=\"invalid_token\"";
        return Task.CompletedTask;
    }
}

using System.Security.Claims;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Sutazai.Server.Identity;

/// <summary>
/// Validates a credential that arrives outside the HTTP headers (a WebSocket's <c>auth</c> message) — a JWT with the
/// bearer handler's parameters, or an <c>sk-</c> API key — and re-validates a socket's credential while it is open,
/// always through the same <see cref="CredentialValidator"/> REST uses (account exists and is active, security stamp
/// unchanged, role from the database).
/// </summary>
public sealed class TokenAuthenticator(IOptionsMonitor<JwtBearerOptions> jwt, CredentialValidator validator, ApiKeyService apiKeys, TimeProvider time)
{
    public async Task<CredentialCheck> AuthenticateAsync(string? token, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(token)) return new CredentialCheck.Invalid("No token was given.");
        ClaimsPrincipal principal;
        if (token.StartsWith(ApiKeyAuthenticationHandler.TokenMarker, StringComparison.Ordinal))
        {
            var lookup = await apiKeys.AuthenticateAsync(token, ApiKeyAuthenticationHandler.SchemeName, ct);
            if (lookup is ApiKeyLookup.Invalid invalid) return new CredentialCheck.Invalid(invalid.Reason);
            principal = ((ApiKeyLookup.Valid)lookup).Principal;
        }
        else
        {
            var options = jwt.Get(JwtBearerDefaults.AuthenticationScheme);
            var result = await new JsonWebTokenHandler { MapInboundClaims = false }.ValidateTokenAsync(token, options.TokenValidationParameters);
            if (!result.IsValid)
                return new CredentialCheck.Invalid(result.Exception is SecurityTokenExpiredException ? "The token has expired." : "The token is not valid.");
            principal = new ClaimsPrincipal(result.ClaimsIdentity);
        }
        return await validator.ValidateAsync(principal, ct) is { } failure
            ? new CredentialCheck.Invalid(failure)
            : new CredentialCheck.Valid(new SocketCredential.Token(token, principal));
    }

    /// <summary>Checks an open socket's credential again, as a new request with it would be checked.</summary>
    public async Task<CredentialCheck> RecheckAsync(SocketCredential credential, CancellationToken ct)
    {
        switch (credential)
        {
            case SocketCredential.Token token:
                return await AuthenticateAsync(token.Value, ct);
            case SocketCredential.Cookie cookie:
                if (cookie.ExpiresAt is { } expires && expires <= time.GetUtcNow()) return new CredentialCheck.Invalid("The sign-in has expired.");
                // The validator rewrites the role claim: work on a copy, since other threads read the socket's principal.
                var principal = cookie.Principal.Clone();
                return await validator.ValidateAsync(principal, ct) is { } failure
                    ? new CredentialCheck.Invalid(failure)
                    : new CredentialCheck.Valid(cookie with { Principal = principal });
            default:
                throw new ArgumentOutOfRangeException(nameof(credential), credential, "Unknown credential kind.");
        }
    }
}

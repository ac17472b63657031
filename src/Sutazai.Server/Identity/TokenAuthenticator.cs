using System.Security.Claims;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;

namespace Sutazai.Server.Identity;

/// <summary>
/// Validates a credential that arrives outside the HTTP headers (a WebSocket's first <c>auth</c> message) — a JWT with
/// the bearer handler's parameters, or an <c>sk-</c> API key — through the same <see cref="CredentialValidator"/>.
/// </summary>
public sealed class TokenAuthenticator(IOptionsMonitor<JwtBearerOptions> jwt, CredentialValidator validator, ApiKeyService apiKeys)
{
    public async Task<ClaimsPrincipal?> AuthenticateAsync(string? token, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(token)) return null;
        if (token.StartsWith(ApiKeyAuthenticationHandler.TokenMarker, StringComparison.Ordinal))
        {
            return await apiKeys.AuthenticateAsync(token, ApiKeyAuthenticationHandler.SchemeName, ct) is ApiKeyLookup.Valid valid
                && await validator.ValidateAsync(valid.Principal, ct) is null ? valid.Principal : null;
        }
        var options = jwt.Get(JwtBearerDefaults.AuthenticationScheme);
        var result = await new JsonWebTokenHandler { MapInboundClaims = false }.ValidateTokenAsync(token, options.TokenValidationParameters);
        if (!result.IsValid) return null;
        var principal = new ClaimsPrincipal(result.ClaimsIdentity);
        return await validator.ValidateAsync(principal, ct) is null ? principal : null;
    }
}

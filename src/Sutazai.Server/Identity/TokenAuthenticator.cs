using System.Security.Claims;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;

namespace Sutazai.Server.Identity;

/// <summary>
/// Validates a bearer token that arrives outside the HTTP headers (a WebSocket's first <c>auth</c> message) with the
/// same parameters and the same <see cref="CredentialValidator"/> as the JWT bearer handler.
/// </summary>
public sealed class TokenAuthenticator(IOptionsMonitor<JwtBearerOptions> jwt, CredentialValidator validator)
{
    public async Task<ClaimsPrincipal?> AuthenticateAsync(string? token, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(token)) return null;
        var options = jwt.Get(JwtBearerDefaults.AuthenticationScheme);
        var result = await new JsonWebTokenHandler { MapInboundClaims = false }.ValidateTokenAsync(token, options.TokenValidationParameters);
        if (!result.IsValid) return null;
        var principal = new ClaimsPrincipal(result.ClaimsIdentity);
        return await validator.ValidateAsync(principal, ct) is null ? principal : null;
    }
}

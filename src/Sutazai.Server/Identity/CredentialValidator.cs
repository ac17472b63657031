using System.Security.Claims;
using Microsoft.EntityFrameworkCore;
using Sutazai.Data;

namespace Sutazai.Server.Identity;

/// <summary>
/// The one check every credential type passes after its signature or hash is verified: the account must exist, be
/// active, and (for tokens that carry one) still have the security stamp the credential was issued under. The role
/// is taken from the database, so a role change or deactivation takes effect on the next request, and so are the
/// scopes an interactive sign-in holds (every scope the role allows; an API key keeps its own, less <c>admin</c> once
/// its owner is no longer one).
/// </summary>
public sealed class CredentialValidator(AppDbContext db)
{
    public async Task<string?> ValidateAsync(ClaimsPrincipal principal, CancellationToken ct)
    {
        if (!Guid.TryParse(principal.FindFirstValue("sub"), out var userId)) return "The token has no subject.";
        var user = await db.Users.AsNoTracking().Where(u => u.Id == userId)
            .Select(u => new { u.IsActive, u.SecurityStamp, u.Role, u.UserName })
            .FirstOrDefaultAsync(ct);
        if (user is null) return "The account no longer exists.";
        if (!user.IsActive) return "The account is deactivated.";
        var stamp = principal.FindFirstValue(TokenService.StampClaim);
        if (stamp is not null && stamp != TokenService.StampHash(user.SecurityStamp)) return "The session was revoked.";

        if (principal.Identity is ClaimsIdentity identity)
        {
            foreach (var claim in identity.FindAll("role").ToList()) identity.RemoveClaim(claim);
            identity.AddClaim(new Claim("role", user.Role));

            var allowed = ApiScopes.AllowedFor(user.Role);
            var isKey = principal.IsApiKey();
            foreach (var claim in identity.FindAll(ApiScopes.ClaimType).Where(c => !isKey || !allowed.Contains(c.Value)).ToList())
                identity.RemoveClaim(claim);
            if (!isKey)
                foreach (var scope in allowed) identity.AddClaim(new Claim(ApiScopes.ClaimType, scope));
        }
        return null;
    }
}

public static class ClaimsPrincipalExtensions
{
    public static Guid UserId(this ClaimsPrincipal principal) =>
        Guid.TryParse(principal.FindFirstValue("sub"), out var id) ? id : throw new InvalidOperationException("Authenticated principal without a subject.");

    public static Guid? SessionId(this ClaimsPrincipal principal) =>
        Guid.TryParse(principal.FindFirstValue(TokenService.SessionClaim), out var id) ? id : null;
}

using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Server.Configuration;

namespace Sutazai.Server.Identity;

public sealed record TokenPair(string AccessToken, string RefreshToken, string TokenType, int ExpiresIn);

public enum RefreshOutcome { Issued, Unknown, Expired, Reused, Revoked, Inactive }

/// <summary>Issues access tokens and manages refresh-token families (rotation with reuse detection).</summary>
public sealed class TokenService(AppDbContext db, JwtKeyStore keys, IOptions<AuthOptions> options, TimeProvider time, ILogger<TokenService> logger)
{
    public const string SessionClaim = "sid";
    public const string StampClaim = "sstamp";

    private AuthOptions Auth => options.Value;

    /// <summary>Starts a new login family.</summary>
    public Task<TokenPair> IssueAsync(AppUser user, HttpContext http, CancellationToken ct) =>
        IssueInFamilyAsync(user, Guid.NewGuid(), http, ct);

    public async Task<(RefreshOutcome Outcome, TokenPair? Tokens)> RefreshAsync(string presented, HttpContext http, CancellationToken ct)
    {
        var hash = Hash(presented);
        var token = await db.RefreshTokens.AsNoTracking().FirstOrDefaultAsync(t => t.TokenHash == hash, ct);
        if (token is null) return (RefreshOutcome.Unknown, null);
        var now = time.GetUtcNow().UtcDateTime;
        if (token.RevokedAt is not null) return (RefreshOutcome.Revoked, null);
        if (token.ConsumedAt is not null)
        {
            await RevokeFamilyAsync(token.FamilyId, "reuse", ct);
            logger.LogWarning("Refresh token reuse detected for user {UserId}; family {FamilyId} revoked", token.UserId, token.FamilyId);
            return (RefreshOutcome.Reused, null);
        }
        if (token.ExpiresAt <= now) return (RefreshOutcome.Expired, null);

        // Consume and issue in one transaction: the consume takes the token row's write lock, so of concurrent
        // exchanges of one token exactly one wins and gets a pair; every other waits for that commit, finds the token
        // consumed, and is reuse — and its family revocation then also covers the winner's new token (it was committed
        // first), so nothing of a family flagged for reuse stays usable.
        RefreshOutcome outcome;
        TokenPair? pair = null;
        await using (var transaction = await db.Database.BeginTransactionAsync(ct))
        {
            var consumed = await db.RefreshTokens
                .Where(t => t.Id == token.Id && t.ConsumedAt == null && t.RevokedAt == null)
                .ExecuteUpdateAsync(s => s.SetProperty(t => t.ConsumedAt, now), ct);
            var user = consumed == 0 ? null : await db.Users.FirstOrDefaultAsync(u => u.Id == token.UserId, ct);
            outcome = consumed == 0 ? RefreshOutcome.Reused : user is null || !user.IsActive ? RefreshOutcome.Inactive : RefreshOutcome.Issued;
            if (outcome == RefreshOutcome.Issued) pair = await IssueInFamilyAsync(user!, token.FamilyId, http, ct);
            await transaction.CommitAsync(ct);
        }
        if (outcome == RefreshOutcome.Reused) await RevokeFamilyAsync(token.FamilyId, "reuse", ct);
        if (outcome == RefreshOutcome.Inactive) await RevokeFamilyAsync(token.FamilyId, "inactive", ct);
        return (outcome, pair);
    }

    /// <summary>Finds the family of a refresh token that belongs to <paramref name="userId"/>, or null.</summary>
    public async Task<Guid?> FindFamilyAsync(string presented, Guid userId, CancellationToken ct)
    {
        var hash = Hash(presented);
        return await db.RefreshTokens.Where(t => t.TokenHash == hash && t.UserId == userId)
            .Select(t => (Guid?)t.FamilyId).FirstOrDefaultAsync(ct);
    }

    public Task<int> RevokeFamilyAsync(Guid familyId, string reason, CancellationToken ct)
    {
        var now = time.GetUtcNow().UtcDateTime;
        return db.RefreshTokens.Where(t => t.FamilyId == familyId && t.RevokedAt == null)
            .ExecuteUpdateAsync(s => s.SetProperty(t => t.RevokedAt, now).SetProperty(t => t.RevokedReason, reason), ct);
    }

    /// <summary>Revokes every session of the user except <paramref name="keepFamily"/> (the caller's own, when given).</summary>
    public Task<int> RevokeAllAsync(Guid userId, string reason, Guid? keepFamily, CancellationToken ct)
    {
        var now = time.GetUtcNow().UtcDateTime;
        return db.RefreshTokens.Where(t => t.UserId == userId && t.RevokedAt == null && t.FamilyId != keepFamily)
            .ExecuteUpdateAsync(s => s.SetProperty(t => t.RevokedAt, now).SetProperty(t => t.RevokedReason, reason), ct);
    }

    public static string StampHash(string? securityStamp) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(securityStamp ?? "")))[..32];

    private async Task<TokenPair> IssueInFamilyAsync(AppUser user, Guid familyId, HttpContext http, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = Auth.Issuer,
            Audience = Auth.Audience,
            IssuedAt = now.UtcDateTime,
            NotBefore = now.UtcDateTime,
            Expires = now.Add(Auth.AccessTokenLifetime).UtcDateTime,
            SigningCredentials = new SigningCredentials(keys.Key, SecurityAlgorithms.HmacSha256),
            Subject = new ClaimsIdentity(
            [
                new Claim(JwtRegisteredClaimNames.Sub, user.Id.ToString()),
                new Claim(JwtRegisteredClaimNames.Jti, Guid.NewGuid().ToString("N")),
                new Claim("name", user.UserName ?? ""),
                new Claim("role", user.Role),
                new Claim(SessionClaim, familyId.ToString()),
                new Claim(StampClaim, StampHash(user.SecurityStamp)),
            ]),
        };
        var access = new JsonWebTokenHandler().CreateToken(descriptor);

        var refresh = Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(32));
        db.RefreshTokens.Add(new RefreshToken
        {
            Id = Guid.NewGuid(),
            UserId = user.Id,
            FamilyId = familyId,
            TokenHash = Hash(refresh),
            CreatedAt = now.UtcDateTime,
            ExpiresAt = now.Add(Auth.RefreshTokenLifetime).UtcDateTime,
            CreatedByIp = http.Connection.RemoteIpAddress?.ToString(),
            UserAgent = Truncate(http.Request.Headers.UserAgent.ToString(), 256),
        });
        await db.SaveChangesAsync(ct);
        return new TokenPair(access, refresh, "Bearer", (int)Auth.AccessTokenLifetime.TotalSeconds);
    }

    private static string Hash(string token) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    private static string? Truncate(string value, int max) =>
        string.IsNullOrEmpty(value) ? null : value.Length <= max ? value : value[..max];
}

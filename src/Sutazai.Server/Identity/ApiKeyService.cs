using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.IdentityModel.Tokens;
using Sutazai.Data;
using Sutazai.Data.Entities;

namespace Sutazai.Server.Identity;

/// <summary>What <see cref="ApiKeyService.AuthenticateAsync"/> found for a presented key.</summary>
public abstract record ApiKeyLookup
{
    public sealed record Valid(ClaimsPrincipal Principal) : ApiKeyLookup;

    public sealed record Invalid(string Reason) : ApiKeyLookup;
}

/// <summary>The outcome of <see cref="ApiKeyService.CreateAsync"/>.</summary>
public abstract record ApiKeyCreation
{
    /// <summary><paramref name="Key"/> is the secret itself, shown this once.</summary>
    public sealed record Created(ApiKey Entity, string Key) : ApiKeyCreation;

    public sealed record Invalid(Dictionary<string, string[]> Errors) : ApiKeyCreation;

    /// <summary>A scope the owner may not hold (<c>admin</c> for a non-administrator).</summary>
    public sealed record Forbidden(string Detail) : ApiKeyCreation;
}

/// <summary>
/// Per-user API keys: <c>sk-sz-</c> + 32 random bytes (base64url), shown once at creation, stored only as the
/// SHA-256 hex of the whole key. A key authenticates as its owner with the claims a JWT carries (<c>sub</c>,
/// <c>name</c>, <c>role</c>) plus its own scopes and id, and then passes the same <see cref="CredentialValidator"/>.
/// </summary>
public sealed class ApiKeyService(AppDbContext db, TimeProvider time)
{
    public const string KeyPrefix = "sk-sz-";
    public const int PrefixLength = 12;
    public const int MaxNameLength = 100;

    /// <summary><c>LastUsedAt</c> is written at most this often per key, so busy keys do not write on every request.</summary>
    public static readonly TimeSpan LastUsedResolution = TimeSpan.FromMinutes(1);

    public static string NewKey() => KeyPrefix + Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(32));

    public static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    /// <summary>
    /// Validates and stores a new key of <paramref name="userId"/>. <paramref name="scopes"/> null means
    /// <see cref="ApiScopes.Default"/>; <c>admin</c> only for an administrator (the role as stored now).
    /// </summary>
    public async Task<ApiKeyCreation> CreateAsync(Guid userId, string? name, DateTime? expiresAt, IReadOnlyList<string>? scopes, CancellationToken ct)
    {
        var errors = new Dictionary<string, List<string>>();
        name = name?.Trim();
        if (string.IsNullOrEmpty(name)) AccountService.Add(errors, "name", "Name is required.");
        else if (name.Length > MaxNameLength) AccountService.Add(errors, "name", $"Name must be at most {MaxNameLength} characters.");
        expiresAt = expiresAt is { } e ? (e.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(e, DateTimeKind.Utc) : e.ToUniversalTime()) : null;
        var now = time.GetUtcNow().UtcDateTime;
        if (expiresAt <= now) AccountService.Add(errors, "expiresAt", "expiresAt must be in the future.");
        scopes ??= ApiScopes.Default;
        if (scopes.Count == 0) AccountService.Add(errors, "scopes", "Give at least one scope, or omit scopes for the default ones.");
        foreach (var unknown in scopes.Where(s => !ApiScopes.IsKnown(s)).Distinct())
            AccountService.Add(errors, "scopes", $"Unknown scope '{unknown}'. Scopes are {string.Join(", ", ApiScopes.All)}.");
        if (errors.Count > 0) return new ApiKeyCreation.Invalid(AccountService.Freeze(errors));

        var role = await db.Users.AsNoTracking().Where(u => u.Id == userId).Select(u => u.Role).FirstOrDefaultAsync(ct);
        var refused = scopes.Where(s => role is null || !ApiScopes.AllowedFor(role).Contains(s)).Distinct().ToList();
        if (refused.Count > 0)
            return new ApiKeyCreation.Forbidden($"Only an administrator can give a key the {string.Join(", ", refused.Select(s => $"'{s}'"))} scope.");

        var key = NewKey();
        var entity = new ApiKey
        {
            Id = Guid.NewGuid(),
            UserId = userId,
            Name = name!,
            Prefix = key[..PrefixLength],
            KeyHash = Hash(key),
            Scopes = ApiScopes.Join(scopes),
            CreatedAt = now,
            ExpiresAt = expiresAt,
        };
        db.ApiKeys.Add(entity);
        await db.SaveChangesAsync(ct);
        return new ApiKeyCreation.Created(entity, key);
    }

    public Task<List<ApiKey>> ListAsync(Guid userId, CancellationToken ct) =>
        db.ApiKeys.AsNoTracking().Where(k => k.UserId == userId)
            .OrderByDescending(k => k.CreatedAt).ThenBy(k => k.Id).ToListAsync(ct);

    /// <summary>Keys of every account (or of one), newest first: the administrator's console (<c>sutazai keys list</c>).</summary>
    public Task<List<ApiKey>> ListAllAsync(Guid? userId, CancellationToken ct) =>
        db.ApiKeys.AsNoTracking().Where(k => userId == null || k.UserId == userId)
            .OrderByDescending(k => k.CreatedAt).ThenBy(k => k.Id).ToListAsync(ct);

    /// <summary>The keys, of any owner, with that id or whose shown prefix (<c>sk-sz-AbCdEf</c>) or key starts so.</summary>
    public async Task<List<ApiKey>> FindAsync(string idOrPrefix, CancellationToken ct)
    {
        var value = idOrPrefix.Trim();
        if (Guid.TryParse(value, out var id)) return await db.ApiKeys.AsNoTracking().Where(k => k.Id == id).ToListAsync(ct);
        if (value.Length > PrefixLength && value.StartsWith(KeyPrefix, StringComparison.Ordinal))
        {
            var hash = Hash(value);
            return await db.ApiKeys.AsNoTracking().Where(k => k.KeyHash == hash).ToListAsync(ct);
        }
        return value.Length < KeyPrefix.Length + 2 ? [] : await db.ApiKeys.AsNoTracking().Where(k => k.Prefix.StartsWith(value)).ToListAsync(ct);
    }

    /// <summary>Revokes one of the user's keys; false when the user has no key with that id.</summary>
    public async Task<bool> RevokeAsync(Guid userId, Guid id, CancellationToken ct)
    {
        var now = time.GetUtcNow().UtcDateTime;
        var key = await db.ApiKeys.FirstOrDefaultAsync(k => k.Id == id && k.UserId == userId, ct);
        if (key is null) return false;
        if (key.RevokedAt is null)
        {
            key.RevokedAt = now;
            await db.SaveChangesAsync(ct);
        }
        return true;
    }

    /// <summary>Revokes every key of the user that still works (a password reset, "log out everywhere" on request).</summary>
    public Task<int> RevokeAllAsync(Guid userId, CancellationToken ct)
    {
        var now = time.GetUtcNow().UtcDateTime;
        return db.ApiKeys.Where(k => k.UserId == userId && k.RevokedAt == null)
            .ExecuteUpdateAsync(s => s.SetProperty(k => k.RevokedAt, now), ct);
    }

    /// <summary>
    /// Looks a presented key up by its hash, rejects revoked and expired keys, and builds the owner's principal.
    /// The caller still runs <see cref="CredentialValidator"/> on it (account exists and is active, role from the DB).
    /// </summary>
    public async Task<ApiKeyLookup> AuthenticateAsync(string presented, string authenticationType, CancellationToken ct)
    {
        if (!presented.StartsWith(KeyPrefix, StringComparison.Ordinal)) return new ApiKeyLookup.Invalid("The API key is not valid.");
        var hash = Hash(presented);
        var found = await (from k in db.ApiKeys.AsNoTracking()
                           join u in db.Users.AsNoTracking() on k.UserId equals u.Id
                           where k.KeyHash == hash
                           select new { k.Id, k.UserId, k.ExpiresAt, k.RevokedAt, k.LastUsedAt, k.Scopes, u.UserName, u.Role })
            .FirstOrDefaultAsync(ct);
        if (found is null) return new ApiKeyLookup.Invalid("The API key is not valid.");
        if (found.RevokedAt is not null) return new ApiKeyLookup.Invalid("The API key was revoked.");
        var now = time.GetUtcNow().UtcDateTime;
        if (found.ExpiresAt is { } expires && expires <= now) return new ApiKeyLookup.Invalid("The API key has expired.");

        if (found.LastUsedAt is null || found.LastUsedAt <= now - LastUsedResolution)
        {
            // Conditional, so concurrent requests with one key write it once per interval.
            var threshold = now - LastUsedResolution;
            await db.ApiKeys.Where(k => k.Id == found.Id && (k.LastUsedAt == null || k.LastUsedAt <= threshold))
                .ExecuteUpdateAsync(s => s.SetProperty(k => k.LastUsedAt, now), ct);
        }

        var identity = new ClaimsIdentity(
        [
            new Claim("sub", found.UserId.ToString()),
            new Claim("name", found.UserName ?? ""),
            new Claim("role", found.Role),
            new Claim(ApiScopes.KeyClaim, found.Id.ToString()),
            .. ApiScopes.Split(found.Scopes).Select(scope => new Claim(ApiScopes.ClaimType, scope)),
        ], authenticationType, "name", "role");
        return new ApiKeyLookup.Valid(new ClaimsPrincipal(identity));
    }
}

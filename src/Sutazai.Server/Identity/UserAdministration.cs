using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Sutazai.Data;
using Sutazai.Data.Entities;

namespace Sutazai.Server.Identity;

/// <summary>How an administrator's change to an account ended.</summary>
public abstract record AccountUpdate
{
    public sealed record Updated(AppUser User) : AccountUpdate;

    public sealed record NotFound : AccountUpdate;

    /// <summary>Refused because it would leave no active administrator.</summary>
    public sealed record Conflict(string Detail) : AccountUpdate;
}

/// <summary>
/// An administrator's work on other accounts, shared by the admin API, the web UI's admin page and the offline
/// <c>sutazai users …</c> commands: listing, finding, role and activation changes, unlocking.
/// </summary>
public sealed class UserAdministration(AppDbContext db, UserManager<AppUser> users, TokenService tokens, TimeProvider time,
    Hosting.LifecycleEvents? events = null)
{
    public async Task<(IReadOnlyList<AppUser> Items, int Total)> ListAsync(int page, int pageSize, CancellationToken ct)
    {
        page = Math.Max(1, page);
        pageSize = Math.Clamp(pageSize, 1, 500);
        var total = await db.Users.CountAsync(ct);
        var items = await db.Users.AsNoTracking().OrderBy(u => u.CreatedAt).ThenBy(u => u.Id)
            .Skip((page - 1) * pageSize).Take(pageSize).ToListAsync(ct);
        return (items, total);
    }

    /// <summary>The account with that id, username or e-mail address (as an administrator types it), or null.</summary>
    public async Task<AppUser?> FindAsync(string idNameOrEmail, CancellationToken ct)
    {
        var value = idNameOrEmail.Trim();
        if (Guid.TryParse(value, out var id)) return await users.FindByIdAsync(id.ToString());
        var normalized = users.NormalizeName(value);
        return await db.Users.FirstOrDefaultAsync(u => u.NormalizedUserName == normalized || u.NormalizedEmail == normalized, ct);
    }

    /// <summary>
    /// Changes an account's role or activation: at least one active admin remains, and a deactivation rotates the
    /// security stamp and revokes every session at once.
    /// </summary>
    public async Task<AccountUpdate> UpdateAsync(Guid id, AdminUpdateUserRequest request, CancellationToken ct)
    {
        var user = await users.FindByIdAsync(id.ToString());
        if (user is null) return new AccountUpdate.NotFound();

        var demotes = request.Role == Roles.User && user.Role == Roles.Admin;
        var deactivates = request.IsActive == false && user.IsActive && user.Role == Roles.Admin;
        if (demotes || deactivates)
        {
            var otherAdmins = await db.Users.CountAsync(u => u.Role == Roles.Admin && u.IsActive && u.Id != user.Id, ct);
            if (otherAdmins == 0) return new AccountUpdate.Conflict("At least one active admin must remain.");
        }

        var deactivating = request.IsActive == false && user.IsActive;
        if (request.Role is not null) user.Role = request.Role;
        if (request.IsActive is not null) user.IsActive = request.IsActive.Value;
        user.UpdatedAt = time.GetUtcNow().UtcDateTime;
        await users.UpdateAsync(user);
        if (deactivating)
        {
            await users.UpdateSecurityStampAsync(user);
            await tokens.RevokeAllAsync(user.Id, "deactivated", keepFamily: null, ct);
            // The offline admin commands have no queue or bus: the server's per-request account check still applies.
            if (events is not null) await events.PublishAsync(Hosting.LifecycleEvents.UserDeactivated, new { userId = user.Id }, CancellationToken.None);
        }
        return new AccountUpdate.Updated(user);
    }

    /// <summary>Ends a lockout and forgets the failed attempts; false when there is no such account.</summary>
    public async Task<bool> UnlockAsync(Guid id)
    {
        var user = await users.FindByIdAsync(id.ToString());
        if (user is null) return false;
        await users.SetLockoutEndDateAsync(user, null);
        await users.ResetAccessFailedCountAsync(user);
        return true;
    }
}

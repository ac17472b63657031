using Sutazai.Inference;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;
using Sutazai.Data.Entities;
using Sutazai.Data;
using Microsoft.EntityFrameworkCore;

namespace Sutazai.Server.Identity;

public static class UsersApi
{
    public static IEndpointRouteBuilder MapUsersApi(this IEndpointRouteBuilder routes)
    {
        var me = routes.MapGroup("/api/v1/users/me").WithTags("Users").RequireAuthorization();
        me.MapGet("", GetMe).WithSummary("The signed-in user's profile.");
        me.MapPatch("", UpdateMe).WithSummary("Change the signed-in user's full name.");
        me.MapPost("/password", ChangePassword).RequireAuthorization(ScopePolicies.Interactive)
            .WithSummary("Change password; every other session is revoked. A wrong current password counts toward the lockout.");

        var admin = routes.MapGroup("/api/v1/admin/users").WithTags("Admin").RequireAuthorization(IdentitySetup.AdminPolicy);
        admin.MapGet("", ListUsers).WithSummary("All accounts, oldest first, paged.");
        admin.MapPatch("/{id:guid}", UpdateUser).WithSummary("Change an account's role or activate/deactivate it.");
        routes.MapGet("/api/v1/admin/usage", Usage).WithTags("Admin").RequireAuthorization(IdentitySetup.AdminPolicy)
            .WithSummary("Per account: stored document bytes against the storage quota, and generations running on this node.");
        return routes;
    }

    private static async Task<Ok<List<UserUsage>>> Usage(AppDbContext db, global::Sutazai.Inference.GenerationLimiter limiter,
        Microsoft.Extensions.Options.IOptions<Configuration.QuotaOptions> quotas, CancellationToken ct)
    {
        var stored = await db.Documents.GroupBy(d => d.OwnerId)
            .Select(g => new { OwnerId = g.Key, Documents = g.Count(), Bytes = g.Sum(d => d.SizeBytes) })
            .ToDictionaryAsync(g => g.OwnerId, ct);
        var users = await db.Users.AsNoTracking().OrderBy(u => u.CreatedAt).ThenBy(u => u.Id).Select(u => new { u.Id, u.UserName }).ToListAsync(ct);
        var running = limiter.RunningByUser();
        var quota = quotas.Value.StorageBytesPerUser;
        return TypedResults.Ok(users.Select(u => new UserUsage(u.Id, u.UserName ?? "",
            stored.TryGetValue(u.Id, out var s) ? s.Documents : 0, s?.Bytes ?? 0, quota == 0 ? null : quota,
            running.GetValueOrDefault(u.Id), limiter.Limit)).ToList());
    }

    private static async Task<Results<Ok<UserResponse>, ProblemHttpResult>> GetMe(HttpContext http, UserManager<AppUser> users)
    {
        var user = await users.FindByIdAsync(http.User.UserId().ToString());
        return user is null ? Problems.Unauthorized("The account no longer exists.") : TypedResults.Ok(UserResponse.From(user));
    }

    private static async Task<Results<Ok<UserResponse>, ProblemHttpResult>> UpdateMe(UpdateProfileRequest request, HttpContext http, UserManager<AppUser> users, TimeProvider time)
    {
        var fullName = string.IsNullOrWhiteSpace(request.FullName) ? null : request.FullName.Trim();
        if (fullName is { Length: > 200 }) return Problems.Validation("fullName", "Full name must be at most 200 characters.");
        if (request.DefaultSystemPrompt is { Length: > 8000 }) return Problems.Validation("defaultSystemPrompt", "Default system prompt must be at most 8000 characters.");
        var user = await users.FindByIdAsync(http.User.UserId().ToString());
        if (user is null) return Problems.Unauthorized("The account no longer exists.");
        if (request.FullName is not null) user.FullName = fullName;
        if (request.DefaultSystemPrompt is not null) user.DefaultSystemPrompt = request.DefaultSystemPrompt.Length == 0 ? null : request.DefaultSystemPrompt;
        user.UpdatedAt = time.GetUtcNow().UtcDateTime;
        await users.UpdateAsync(user);
        return TypedResults.Ok(UserResponse.From(user));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> ChangePassword(
        ChangePasswordRequest request, HttpContext http, AccountService accounts, CancellationToken ct)
    {
        // The security stamp changes, so every access token dies; this session's refresh token survives so the caller
        // can refresh, while every other session is revoked.
        var result = await accounts.ChangePasswordAsync(http.User.UserId(), request.CurrentPassword, request.NewPassword, http.User.SessionId(), ct);
        return result switch
        {
            PasswordChangeResult.Changed => TypedResults.NoContent(),
            PasswordChangeResult.WrongCurrentPassword => Problems.Validation("currentPassword", "The current password is not correct."),
            PasswordChangeResult.LockedOut l => Problems.Forbidden(
                $"The account is locked after too many wrong passwords. Try again after {l.Until.UtcDateTime:O}.",
                new Dictionary<string, object?> { ["lockedUntil"] = l.Until.UtcDateTime }),
            PasswordChangeResult.Invalid i => Problems.Validation(new Dictionary<string, string[]> { ["newPassword"] = [.. i.NewPasswordErrors] }),
            _ => Problems.Unauthorized("The account no longer exists."),
        };
    }

    private static async Task<Ok<PagedResponse<UserResponse>>> ListUsers(UserAdministration admin, int page = 1, int pageSize = 50, CancellationToken ct = default)
    {
        page = Math.Max(1, page);
        pageSize = Math.Clamp(pageSize, 1, 200);
        var (items, total) = await admin.ListAsync(page, pageSize, ct);
        return TypedResults.Ok(new PagedResponse<UserResponse>(items.Select(UserResponse.From).ToList(), total, page, pageSize));
    }

    private static async Task<Results<Ok<UserResponse>, ProblemHttpResult>> UpdateUser(
        Guid id, AdminUpdateUserRequest request, UserAdministration admin, CancellationToken ct)
    {
        if (request.Role is not null && !Roles.IsKnown(request.Role))
            return Problems.Validation("role", $"Role must be '{Roles.Admin}' or '{Roles.User}'.");
        return await admin.UpdateAsync(id, request, ct) switch
        {
            AccountUpdate.Updated u => TypedResults.Ok(UserResponse.From(u.User)),
            AccountUpdate.Conflict c => Problems.Conflict(c.Detail),
            _ => Problems.NotFound("No user with that id."),
        };
    }
}

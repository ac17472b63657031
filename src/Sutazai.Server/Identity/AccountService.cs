using System.Net.Mail;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Server.Configuration;
using Sutazai.Server.Data;
using Sutazai.Server.Hosting;
using Sutazai.Server.Identity.Mail;

namespace Sutazai.Server.Identity;

public abstract record RegisterResult
{
    public sealed record Created(AppUser User) : RegisterResult;
    public sealed record Invalid(Dictionary<string, string[]> Errors) : RegisterResult;
    public sealed record Conflict(string Detail) : RegisterResult;
}

/// <summary>
/// How a sign-in ended. Doors answer <see cref="InvalidCredentials"/> and <see cref="LockedOut"/> alike
/// (<see cref="AccountService.InvalidOrLockedMessage"/>): only existing accounts lock, so telling them apart to the
/// caller would tell which accounts exist.
/// </summary>
public abstract record LoginResult
{
    public sealed record Success(AppUser User) : LoginResult;
    public sealed record InvalidCredentials : LoginResult;
    public sealed record LockedOut(DateTimeOffset Until) : LoginResult;
    public sealed record Inactive : LoginResult;
}

public abstract record PasswordChangeResult
{
    public sealed record Changed(AppUser User) : PasswordChangeResult;

    /// <summary>The current password was wrong (and the failure counted toward the lockout).</summary>
    public sealed record WrongCurrentPassword : PasswordChangeResult;

    /// <summary>Too many wrong passwords (sign-ins and changes together): no change until <paramref name="Until"/>.</summary>
    public sealed record LockedOut(DateTimeOffset Until) : PasswordChangeResult;

    public sealed record Invalid(IReadOnlyList<string> NewPasswordErrors) : PasswordChangeResult;

    public sealed record NoAccount : PasswordChangeResult;
}

/// <summary>Account rules: registration, sign-in with lockout, password changes and resets, sessions, verification.</summary>
public sealed partial class AccountService(
    AppDbContext db,
    UserManager<AppUser> users,
    TokenService tokens,
    ApiKeyService apiKeys,
    IMailSender mail,
    SutazaiMetrics metrics,
    TimeProvider time,
    IOptions<SutazaiOptions> app,
    ILogger<AccountService> logger)
{
    public const string FirstAdminFlag = "first-admin";

    /// <summary>The one answer to a wrong password, an unknown account and a locked one (API and web UI).</summary>
    public const string InvalidOrLockedMessage =
        "Invalid username or password, or the account is locked for a while after too many failed attempts.";

    [GeneratedRegex("^[A-Za-z0-9._-]{3,32}$")]
    private static partial Regex UsernamePattern();

    // A valid hash of a random password, checked against when the login names no account so that the answer takes
    // as long as a wrong password does (no account enumeration by timing).
    private static readonly Lazy<string> DummyHash = new(() =>
        new PasswordHasher<AppUser>().HashPassword(new AppUser(), Guid.NewGuid().ToString()));

    public async Task<RegisterResult> RegisterAsync(RegisterRequest request, CancellationToken ct)
    {
        var errors = new Dictionary<string, List<string>>();
        var email = request.Email?.Trim() ?? "";
        var username = request.Username?.Trim() ?? "";
        var fullName = string.IsNullOrWhiteSpace(request.FullName) ? null : request.FullName.Trim();

        if (!IsValidEmail(email)) Add(errors, "email", email.Length == 0 ? "Email is required." : "Email is not a valid address.");
        if (username.Length == 0) Add(errors, "username", "Username is required.");
        else if (!UsernamePattern().IsMatch(username)) Add(errors, "username", "Username must be 3-32 characters of letters, digits, '.', '_' or '-'.");
        if (fullName is { Length: > 200 }) Add(errors, "fullName", "Full name must be at most 200 characters.");

        var user = new AppUser { Email = email, UserName = username, FullName = fullName };
        foreach (var error in await ValidatePasswordAsync(user, request.Password)) Add(errors, "password", error);
        if (errors.Count > 0) return new RegisterResult.Invalid(Freeze(errors));

        if (await users.FindByNameAsync(username) is not null) return new RegisterResult.Conflict("That username is already taken.");
        if (await users.FindByEmailAsync(email) is not null) return new RegisterResult.Conflict("An account with that email already exists.");

        var now = time.GetUtcNow().UtcDateTime;
        user.CreatedAt = now;
        user.UpdatedAt = now;
        user.Role = await ClaimFirstAdminAsync(ct) ? Roles.Admin : Roles.User;
        IdentityResult created;
        try
        {
            created = await users.CreateAsync(user, request.Password!);
        }
        catch (DbUpdateException ex) when (DbErrors.IsUniqueViolation(ex))
        {
            // Lost a race with a concurrent registration of the same name or address.
            return new RegisterResult.Conflict("An account with that email or username already exists.");
        }
        if (!created.Succeeded)
        {
            if (created.Errors.Any(e => e.Code is "DuplicateUserName" or "DuplicateEmail"))
                return new RegisterResult.Conflict("An account with that email or username already exists.");
            var identityErrors = new Dictionary<string, List<string>>();
            foreach (var e in created.Errors) Add(identityErrors, FieldFor(e.Code), e.Description);
            return new RegisterResult.Invalid(Freeze(identityErrors));
        }
        logger.LogInformation("Registered user {UserId} ({Username}) as {Role}", user.Id, user.UserName, user.Role);
        await SendVerificationAsync(user, ct);
        return new RegisterResult.Created(user);
    }

    /// <summary>
    /// Exactly one registration ever becomes admin: the one that inserts the first-admin flag (a primary key, so
    /// concurrent first registrations cannot both win).
    /// </summary>
    private async Task<bool> ClaimFirstAdminAsync(CancellationToken ct)
    {
        if (await db.SystemFlags.AnyAsync(f => f.Key == FirstAdminFlag, ct)) return false;
        if (await db.Users.AnyAsync(ct)) return false;
        var flag = new SystemFlag { Key = FirstAdminFlag, CreatedAt = time.GetUtcNow().UtcDateTime };
        db.SystemFlags.Add(flag);
        try
        {
            await db.SaveChangesAsync(ct);
            return true;
        }
        catch (DbUpdateException ex) when (DbErrors.IsUniqueViolation(ex))
        {
            db.Entry(flag).State = EntityState.Detached;
            return false;
        }
    }

    public async Task<LoginResult> LoginAsync(string login, string password, CancellationToken ct)
    {
        var normalized = users.NormalizeName(login.Trim());
        var user = await db.Users.FirstOrDefaultAsync(u => u.NormalizedUserName == normalized || u.NormalizedEmail == normalized, ct);
        if (user is null)
        {
            new PasswordHasher<AppUser>().VerifyHashedPassword(new AppUser(), DummyHash.Value, password);
            metrics.Login("invalid_credentials");
            return new LoginResult.InvalidCredentials();
        }
        if (await users.IsLockedOutAsync(user))
        {
            // As long as a wrong password takes, so that a locked account does not answer faster than an unknown one.
            new PasswordHasher<AppUser>().VerifyHashedPassword(new AppUser(), DummyHash.Value, password);
            metrics.Login("locked");
            return new LoginResult.LockedOut(user.LockoutEnd!.Value);
        }
        if (!await users.CheckPasswordAsync(user, password))
        {
            await users.AccessFailedAsync(user);
            if (await users.IsLockedOutAsync(user))
            {
                metrics.Login("locked");
                metrics.Lockout();
                logger.LogWarning("Account {UserId} locked until {Until} after repeated failed logins", user.Id, user.LockoutEnd);
                return new LoginResult.LockedOut(user.LockoutEnd!.Value);
            }
            metrics.Login("invalid_credentials");
            return new LoginResult.InvalidCredentials();
        }
        if (!user.IsActive)
        {
            metrics.Login("inactive");
            return new LoginResult.Inactive();
        }
        if (user.AccessFailedCount > 0) await users.ResetAccessFailedCountAsync(user);
        user.LastLoginAt = time.GetUtcNow().UtcDateTime;
        await users.UpdateAsync(user);
        metrics.Login("success");
        return new LoginResult.Success(user);
    }

    public async Task<IReadOnlyList<string>> ValidatePasswordAsync(AppUser user, string? password)
    {
        if (string.IsNullOrEmpty(password)) return ["Password is required."];
        var messages = new List<string>();
        foreach (var validator in users.PasswordValidators)
        {
            var result = await validator.ValidateAsync(users, user, password);
            messages.AddRange(result.Errors.Select(e => e.Description));
        }
        return messages;
    }

    public async Task SendPasswordResetAsync(string email, CancellationToken ct)
    {
        var user = await users.FindByEmailAsync(email.Trim());
        if (user is null || !user.IsActive)
        {
            logger.LogInformation("Password reset requested for an address with no active account");
            return;
        }
        var token = Pack(user.Id, await users.GeneratePasswordResetTokenAsync(user));
        var link = $"{app.Value.PublicUrl.TrimEnd('/')}/reset-password?token={Uri.EscapeDataString(token)}";
        await mail.SendAsync(user.Email!, "Reset your SutazAI password",
            $"Someone asked to reset the password of the SutazAI account '{user.UserName}'.\n\n" +
            $"Open this link within the hour to choose a new password:\n{link}\n\n" +
            $"Or send this token to POST /api/v1/auth/password-reset/confirm:\n{token}\n\n" +
            "If it was not you, ignore this message; your password stays as it is.\n", ct);
    }

    public async Task SendVerificationAsync(AppUser user, CancellationToken ct)
    {
        var token = Pack(user.Id, await users.GenerateEmailConfirmationTokenAsync(user));
        var link = $"{app.Value.PublicUrl.TrimEnd('/')}/verify-email?token={Uri.EscapeDataString(token)}";
        await mail.SendAsync(user.Email!, "Verify your SutazAI email address",
            $"Welcome to SutazAI, {user.UserName}.\n\nConfirm this address by opening:\n{link}\n\n" +
            $"Or send this token to POST /api/v1/auth/verify-email:\n{token}\n", ct);
    }

    /// <summary>
    /// Resets the password with a single-use token; the returned user is null when the token is not valid. Whoever
    /// asked for the reset may not be the only one holding the old password, so every session (refresh tokens; the
    /// security stamp changes, which ends access tokens and cookies) and every API key of the account is revoked.
    /// </summary>
    public async Task<(AppUser? User, IReadOnlyList<string> PasswordErrors)> ResetPasswordAsync(string token, string? newPassword, CancellationToken ct)
    {
        if (!TryUnpack(token, out var userId, out var inner)) return (null, []);
        var user = await users.FindByIdAsync(userId.ToString());
        if (user is null) return (null, []);
        var passwordErrors = await ValidatePasswordAsync(user, newPassword);
        if (passwordErrors.Count > 0) return (user, passwordErrors);
        var result = await users.ResetPasswordAsync(user, inner, newPassword!);
        if (!result.Succeeded) return (null, []);
        if (await users.IsLockedOutAsync(user)) await users.SetLockoutEndDateAsync(user, null);
        await users.ResetAccessFailedCountAsync(user);
        await tokens.RevokeAllAsync(user.Id, "password_reset", keepFamily: null, ct);
        var keys = await apiKeys.RevokeAllAsync(user.Id, ct);
        logger.LogInformation("Password of {UserId} reset: every session and {Keys} API keys revoked", user.Id, keys);
        return (user, []);
    }

    /// <summary>
    /// An administrator's reset from the server's own console (<c>sutazai users set-password</c>), for an account whose
    /// owner cannot sign in (forgotten password, locked out, no mail set up): the same rules and revocations as a reset
    /// by e-mailed token — it clears the lockout and revokes every session and API key of the account.
    /// </summary>
    public async Task<(AppUser? User, IReadOnlyList<string> PasswordErrors)> SetPasswordAsync(Guid userId, string? newPassword, CancellationToken ct)
    {
        var user = await users.FindByIdAsync(userId.ToString());
        if (user is null) return (null, []);
        var token = Pack(user.Id, await users.GeneratePasswordResetTokenAsync(user));
        return await ResetPasswordAsync(token, newPassword, ct);
    }

    /// <summary>
    /// Changes the password after checking the current one. A wrong current password counts toward the lockout like a
    /// failed sign-in, and a locked account cannot change it, so a stolen session cannot guess the password faster
    /// than the sign-in form allows. Every refresh-token family but <paramref name="keepFamily"/> is revoked; the new
    /// security stamp ends every access token and cookie. API keys stay (they were not made with the password).
    /// </summary>
    public async Task<PasswordChangeResult> ChangePasswordAsync(Guid userId, string? currentPassword, string? newPassword, Guid? keepFamily, CancellationToken ct)
    {
        var user = await users.FindByIdAsync(userId.ToString());
        if (user is null) return new PasswordChangeResult.NoAccount();
        if (await users.IsLockedOutAsync(user)) return new PasswordChangeResult.LockedOut(user.LockoutEnd!.Value);
        if (string.IsNullOrEmpty(currentPassword) || !await users.CheckPasswordAsync(user, currentPassword))
        {
            await users.AccessFailedAsync(user);
            if (await users.IsLockedOutAsync(user))
            {
                metrics.Lockout();
                logger.LogWarning("Account {UserId} locked until {Until} after repeated wrong passwords", user.Id, user.LockoutEnd);
                return new PasswordChangeResult.LockedOut(user.LockoutEnd!.Value);
            }
            return new PasswordChangeResult.WrongCurrentPassword();
        }
        var errors = await ValidatePasswordAsync(user, newPassword);
        if (errors.Count > 0) return new PasswordChangeResult.Invalid(errors);
        var result = await users.ChangePasswordAsync(user, currentPassword, newPassword!);
        if (!result.Succeeded) return new PasswordChangeResult.Invalid([.. result.Errors.Select(e => e.Description)]);
        if (user.AccessFailedCount > 0) await users.ResetAccessFailedCountAsync(user);
        await tokens.RevokeAllAsync(user.Id, "password_change", keepFamily, ct);
        return new PasswordChangeResult.Changed(user);
    }

    /// <summary>
    /// "Log out everywhere": every refresh-token family is revoked and the security stamp changes, which every access
    /// token and cookie is checked against; with <paramref name="revokeApiKeys"/> every API key goes too.
    /// </summary>
    public async Task LogOutEverywhereAsync(Guid userId, bool revokeApiKeys, CancellationToken ct)
    {
        var user = await users.FindByIdAsync(userId.ToString());
        if (user is null) return;
        await tokens.RevokeAllAsync(user.Id, "logout_all", keepFamily: null, ct);
        await users.UpdateSecurityStampAsync(user);
        if (revokeApiKeys) await apiKeys.RevokeAllAsync(user.Id, ct);
    }

    public async Task<bool> VerifyEmailAsync(string token)
    {
        if (!TryUnpack(token, out var userId, out var inner)) return false;
        var user = await users.FindByIdAsync(userId.ToString());
        if (user is null) return false;
        var result = await users.ConfirmEmailAsync(user, inner);
        return result.Succeeded;
    }

    // Identity's tokens need the user; ours carry the user id so the confirm endpoints take a token alone.
    private static string Pack(Guid userId, string inner) =>
        WebEncoders.Base64UrlEncode(Encoding.UTF8.GetBytes($"{userId:N}.{inner}"));

    private static bool TryUnpack(string token, out Guid userId, out string inner)
    {
        userId = Guid.Empty;
        inner = "";
        string decoded;
        try
        {
            decoded = Encoding.UTF8.GetString(WebEncoders.Base64UrlDecode(token));
        }
        catch (FormatException)
        {
            return false;
        }
        var dot = decoded.IndexOf('.', StringComparison.Ordinal);
        if (dot <= 0 || !Guid.TryParseExact(decoded[..dot], "N", out userId)) return false;
        inner = decoded[(dot + 1)..];
        return inner.Length > 0;
    }

    public static bool IsValidEmail(string email) =>
        email.Length is > 0 and <= 254 && MailAddress.TryCreate(email, out var parsed) && parsed.Address == email && email.Contains('@', StringComparison.Ordinal);

    private static string FieldFor(string identityCode) => identityCode switch
    {
        var c when c.StartsWith("Password", StringComparison.Ordinal) => "password",
        var c when c.Contains("Email", StringComparison.Ordinal) => "email",
        _ => "username",
    };

    internal static void Add(Dictionary<string, List<string>> errors, string field, string message)
    {
        if (!errors.TryGetValue(field, out var list)) errors[field] = list = [];
        list.Add(message);
    }

    internal static Dictionary<string, string[]> Freeze(Dictionary<string, List<string>> errors) =>
        errors.ToDictionary(e => e.Key, e => e.Value.ToArray());
}

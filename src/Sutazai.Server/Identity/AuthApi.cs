using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Sutazai.Data.Entities;
using Sutazai.Server.Hosting;

namespace Sutazai.Server.Identity;

public static class AuthApi
{
    public static IEndpointRouteBuilder MapAuthApi(this IEndpointRouteBuilder routes)
    {
        var auth = routes.MapGroup("/api/v1/auth").WithTags("Auth");
        var limited = auth.MapGroup("").RequireRateLimiting(ServiceDefaults.AuthRateLimitPolicy);

        limited.MapPost("/register", Register)
            .WithSummary("Create an account. The first account ever created is admin.");
        limited.MapPost("/login", Login)
            .Accepts<LoginRequest>("application/json", "application/x-www-form-urlencoded")
            .WithSummary("Sign in with username or email (JSON) or the OAuth2 password form.");
        limited.MapPost("/refresh", Refresh)
            .WithSummary("Exchange a refresh token for a new pair; the presented token is consumed.");
        limited.MapPost("/password-reset", RequestPasswordReset)
            .WithSummary("Mail a password-reset token. Always 202.");
        limited.MapPost("/password-reset/confirm", ConfirmPasswordReset)
            .WithSummary("Set a new password with a reset token.");
        limited.MapPost("/verify-email", VerifyEmail)
            .WithSummary("Confirm an email address with the token that was mailed.");

        auth.MapPost("/verify-email/resend", ResendVerification).RequireAuthorization()
            .WithSummary("Mail a new verification token to the signed-in user.");
        auth.MapPost("/logout", Logout).RequireAuthorization()
            .WithSummary("End this session: its refresh token family is revoked.");
        auth.MapPost("/logout/all", LogoutAll).RequireAuthorization(ScopePolicies.Interactive)
            .WithSummary("End every session of the user and invalidate their access tokens; {\"revokeApiKeys\": true} revokes every API key too.");
        return routes;
    }

    private static async Task<Results<Created<UserResponse>, ProblemHttpResult>> Register(RegisterRequest request, AccountService accounts, CancellationToken ct)
    {
        return await accounts.RegisterAsync(request, ct) switch
        {
            RegisterResult.Created c => TypedResults.Created($"/api/v1/users/{c.User.Id}", UserResponse.From(c.User)),
            RegisterResult.Invalid i => Problems.Validation(i.Errors),
            RegisterResult.Conflict c => Problems.Conflict(c.Detail),
            _ => throw new InvalidOperationException("Unknown registration result."),
        };
    }

    private static async Task<Results<Ok<TokenPair>, ProblemHttpResult>> Login(HttpContext http, AccountService accounts, TokenService tokens, CancellationToken ct)
    {
        string? login, password;
        if (http.Request.HasFormContentType)
        {
            var form = await http.Request.ReadFormCheckedAsync(ct);
            login = form["username"].FirstOrDefault() ?? form["login"].FirstOrDefault();
            password = form["password"].FirstOrDefault();
        }
        else if (http.Request.HasJsonContentType())
        {
            LoginRequest? body;
            try
            {
                body = await http.Request.ReadFromJsonAsync<LoginRequest>(ct);
            }
            catch (JsonException ex)
            {
                throw new BadHttpRequestException("Malformed JSON.", StatusCodes.Status400BadRequest, ex);
            }
            login = body?.Login;
            password = body?.Password;
        }
        else
        {
            return Problems.Status(StatusCodes.Status415UnsupportedMediaType, "Unsupported Media Type",
                "Send JSON {login, password} or an application/x-www-form-urlencoded form with username and password.");
        }

        var errors = new Dictionary<string, List<string>>();
        if (string.IsNullOrWhiteSpace(login)) AccountService.Add(errors, "login", "Username or email is required.");
        if (string.IsNullOrEmpty(password)) AccountService.Add(errors, "password", "Password is required.");
        if (errors.Count > 0) return Problems.Validation(AccountService.Freeze(errors));

        switch (await accounts.LoginAsync(login!, password!, ct))
        {
            case LoginResult.Success s:
                return TypedResults.Ok(await tokens.IssueAsync(s.User, http, ct));
            case LoginResult.Inactive:
                // Only after the right password, so it tells nothing to someone without it.
                return Problems.Forbidden("The account is deactivated. Ask an administrator to reactivate it.");
            default:
                // Unknown account, wrong password and locked account: one answer (see LoginResult).
                return Problems.Unauthorized(AccountService.InvalidOrLockedMessage);
        }
    }

    private static async Task<Results<Ok<TokenPair>, ProblemHttpResult>> Refresh(RefreshRequest request, HttpContext http, TokenService tokens, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(request.RefreshToken)) return Problems.Validation("refreshToken", "Refresh token is required.");
        var (outcome, pair) = await tokens.RefreshAsync(request.RefreshToken, http, ct);
        return outcome switch
        {
            RefreshOutcome.Issued => TypedResults.Ok(pair!),
            RefreshOutcome.Reused => Problems.Unauthorized("This refresh token was already used; every session of this login has been revoked. Sign in again."),
            RefreshOutcome.Expired => Problems.Unauthorized("The refresh token has expired. Sign in again."),
            RefreshOutcome.Revoked => Problems.Unauthorized("The refresh token was revoked. Sign in again."),
            RefreshOutcome.Inactive => Problems.Unauthorized("The account is deactivated."),
            _ => Problems.Unauthorized("The refresh token is not valid."),
        };
    }

    private static async Task<Results<Accepted, ProblemHttpResult>> RequestPasswordReset(PasswordResetRequest request, AccountService accounts, CancellationToken ct)
    {
        var email = request.Email?.Trim() ?? "";
        if (!AccountService.IsValidEmail(email)) return Problems.Validation("email", "Email is not a valid address.");
        await accounts.SendPasswordResetAsync(email, ct);
        return TypedResults.Accepted((string?)null);
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> ConfirmPasswordReset(PasswordResetConfirmRequest request, AccountService accounts, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(request.Token)) return Problems.Validation("token", "Token is required.");
        var (user, passwordErrors) = await accounts.ResetPasswordAsync(request.Token, request.NewPassword, ct);
        if (passwordErrors.Count > 0) return Problems.Validation(new Dictionary<string, string[]> { ["newPassword"] = [.. passwordErrors] });
        if (user is null) return Problems.Status(StatusCodes.Status400BadRequest, "Bad Request", "The reset token is invalid, expired or already used.");
        return TypedResults.NoContent();
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> VerifyEmail(VerifyEmailRequest request, AccountService accounts)
    {
        if (string.IsNullOrWhiteSpace(request.Token)) return Problems.Validation("token", "Token is required.");
        return await accounts.VerifyEmailAsync(request.Token)
            ? TypedResults.NoContent()
            : Problems.Status(StatusCodes.Status400BadRequest, "Bad Request", "The verification token is invalid or expired.");
    }

    private static async Task<Results<Accepted, ProblemHttpResult>> ResendVerification(HttpContext http, UserManager<AppUser> users, AccountService accounts, CancellationToken ct)
    {
        var user = await users.FindByIdAsync(http.User.UserId().ToString());
        if (user is null) return Problems.Unauthorized("The account no longer exists.");
        if (user.EmailConfirmed) return Problems.Conflict("The email address is already verified.");
        await accounts.SendVerificationAsync(user, ct);
        return TypedResults.Accepted((string?)null);
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> Logout(RefreshRequest? request, HttpContext http, TokenService tokens, CancellationToken ct)
    {
        var userId = http.User.UserId();
        Guid? family = null;
        if (!string.IsNullOrWhiteSpace(request?.RefreshToken))
        {
            family = await tokens.FindFamilyAsync(request.RefreshToken, userId, ct);
            if (family is null) return Problems.Validation("refreshToken", "That refresh token does not belong to this account.");
        }
        family ??= http.User.SessionId();
        if (family is not null) await tokens.RevokeFamilyAsync(family.Value, "logout", ct);
        return TypedResults.NoContent();
    }

    private static async Task<NoContent> LogoutAll([FromBody] LogoutAllRequest? request, HttpContext http, AccountService accounts, CancellationToken ct)
    {
        await accounts.LogOutEverywhereAsync(http.User.UserId(), request?.RevokeApiKeys == true, ct);
        return TypedResults.NoContent();
    }
}

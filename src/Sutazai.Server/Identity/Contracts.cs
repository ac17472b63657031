namespace Sutazai.Server.Identity;

public sealed record RegisterRequest(string? Email, string? Username, string? Password, string? FullName);

public sealed record LoginRequest(string? Login, string? Password);

public sealed record RefreshRequest(string? RefreshToken);

/// <summary>"Log out everywhere"; <c>revokeApiKeys</c> ends every API key of the account as well.</summary>
public sealed record LogoutAllRequest(bool? RevokeApiKeys);

public sealed record PasswordResetRequest(string? Email);

public sealed record PasswordResetConfirmRequest(string? Token, string? NewPassword);

public sealed record VerifyEmailRequest(string? Token);

public sealed record UpdateProfileRequest(string? FullName, string? DefaultSystemPrompt);

public sealed record ChangePasswordRequest(string? CurrentPassword, string? NewPassword);

public sealed record AdminUpdateUserRequest(string? Role, bool? IsActive);

public sealed record UserResponse(Guid Id, string Email, string Username, string? FullName, string Role, bool IsVerified, bool IsActive, DateTime CreatedAt, DateTime? LastLoginAt, string? DefaultSystemPrompt)
{
    public static UserResponse From(Sutazai.Data.Entities.AppUser user) =>
        new(user.Id, user.Email ?? "", user.UserName ?? "", user.FullName, user.Role, user.EmailConfirmed, user.IsActive, user.CreatedAt, user.LastLoginAt, user.DefaultSystemPrompt);
}

public sealed record PagedResponse<T>(IReadOnlyList<T> Items, int Total, int Page, int PageSize);

/// <summary>One account's use of its limits (<c>storageQuotaBytes</c> null: no quota).</summary>
public sealed record UserUsage(Guid UserId, string Username, int Documents, long StorageBytes, long? StorageQuotaBytes, int RunningGenerations, int ConcurrentGenerationLimit);

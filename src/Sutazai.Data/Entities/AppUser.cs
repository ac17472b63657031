using Microsoft.AspNetCore.Identity;

namespace Sutazai.Data.Entities;

/// <summary>A SutazAI account. Identity supplies hashing, lockout, security stamps and tokens.</summary>
public sealed class AppUser : IdentityUser<Guid>
{
    public string? FullName { get; set; }

    /// <summary>Either <see cref="Roles.Admin"/> or <see cref="Roles.User"/>.</summary>
    public string Role { get; set; } = Roles.User;

    public bool IsActive { get; set; } = true;

    public DateTime CreatedAt { get; set; }

    public DateTime UpdatedAt { get; set; }

    public DateTime? LastLoginAt { get; set; }

    /// <summary>System prompt new conversations start with.</summary>
    public string? DefaultSystemPrompt { get; set; }
}

public static class Roles
{
    public const string Admin = "admin";
    public const string User = "user";

    public static bool IsKnown(string role) => role is Admin or User;
}

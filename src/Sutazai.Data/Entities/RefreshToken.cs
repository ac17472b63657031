namespace Sutazai.Data.Entities;

/// <summary>
/// One refresh token of a login family. Only the SHA-256 of the token is stored; a token is consumed when it is
/// exchanged, and presenting a consumed token revokes the whole family (reuse detection).
/// </summary>
public sealed class RefreshToken
{
    public Guid Id { get; set; }

    public Guid UserId { get; set; }

    /// <summary>All tokens descending from one login share a family; it is the session id.</summary>
    public Guid FamilyId { get; set; }

    public required string TokenHash { get; set; }

    public DateTime CreatedAt { get; set; }

    public DateTime ExpiresAt { get; set; }

    public DateTime? ConsumedAt { get; set; }

    public DateTime? RevokedAt { get; set; }

    public string? RevokedReason { get; set; }

    public string? CreatedByIp { get; set; }

    public string? UserAgent { get; set; }
}

namespace Sutazai.Data.Entities;

/// <summary>
/// A per-user API key (<c>sk-…</c>) for the OpenAI-compatible API and scripts. Only its SHA-256 is stored; the key is
/// shown once at creation. It authenticates through the same validator as a JWT, with only the scopes it was given.
/// </summary>
public sealed class ApiKey
{
    public Guid Id { get; set; }

    public Guid UserId { get; set; }

    public required string Name { get; set; }

    /// <summary>The first characters of the key (e.g. <c>sk-sz-AbCd</c>), shown in listings to tell keys apart.</summary>
    public required string Prefix { get; set; }

    public required string KeyHash { get; set; }

    /// <summary>What the key may do, space-separated (e.g. <c>inference chat knowledge</c>); see the server's ApiScopes.</summary>
    public required string Scopes { get; set; }

    public DateTime CreatedAt { get; set; }

    public DateTime? ExpiresAt { get; set; }

    public DateTime? LastUsedAt { get; set; }

    public DateTime? RevokedAt { get; set; }
}

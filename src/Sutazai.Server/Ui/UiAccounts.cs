using Microsoft.EntityFrameworkCore;
using Sutazai.Data;

namespace Sutazai.Server.Ui;

/// <summary>Small account questions the static sign-in pages ask.</summary>
public sealed class UiAccounts(AppDbContext db)
{
    public Task<bool> AnyAccountAsync(CancellationToken ct) => db.Users.AnyAsync(ct);

    /// <summary>Only a local path is followed after sign-in ("/c/…"), never another site or a protocol-relative URL.</summary>
    public static string SafeReturnUrl(string? returnUrl) =>
        returnUrl is { Length: > 0 } url && url[0] == '/' && !url.StartsWith("//", StringComparison.Ordinal) && !url.StartsWith("/\\", StringComparison.Ordinal)
            ? url
            : "/";
}

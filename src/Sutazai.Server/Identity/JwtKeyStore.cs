using System.Security.Cryptography;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Server.Configuration;
using Sutazai.Server.Hosting;

namespace Sutazai.Server.Identity;

/// <summary>
/// The HS256 signing key every node signs and checks tokens with. <c>Sutazai:Auth:SigningKey</c> (base64, at least
/// 256 bits) wins when set; otherwise the key lives in the database (<c>system_flags</c>, key
/// <see cref="FlagKey"/>), so any node validates any node's tokens. The first node to start makes it from 64 random
/// bytes, or takes an earlier version's <c>&lt;DataDir&gt;/keys/jwt-signing.key</c> (tokens already issued stay
/// valid; the file is deleted once the database holds the key). Nodes starting together agree on one key: the
/// insert is keyed, so exactly one wins and the others read its key. There is no built-in default secret.
/// Loaded once, by the warm-up (after migrations); nothing reads <see cref="Key"/> before requests are served.
/// </summary>
public sealed class JwtKeyStore(IOptions<SutazaiOptions> app, IOptions<AuthOptions> auth, IServiceScopeFactory scopes, TimeProvider time,
    ILogger<JwtKeyStore> logger) : IStartupStep
{
    public const string FlagKey = "secret:jwt-signing-key";

    /// <summary>Where versions before the shared key kept it, per node.</summary>
    public const string LegacyFileName = "jwt-signing.key";

    private readonly SemaphoreSlim _lock = new(1, 1);
    private SymmetricSecurityKey? _key;

    /// <summary>The key; loads it on first use when the warm-up has not (offline commands).</summary>
    public SymmetricSecurityKey Key => _key ?? LoadAsync(CancellationToken.None).GetAwaiter().GetResult();

    /// <summary>Where the key came from: <c>configuration</c> or <c>database</c>.</summary>
    public string? Source { get; private set; }

    public async Task RunAsync(CancellationToken cancellationToken) => await LoadAsync(cancellationToken);

    private async Task<SymmetricSecurityKey> LoadAsync(CancellationToken cancellationToken)
    {
        if (_key is not null) return _key;
        await _lock.WaitAsync(cancellationToken);
        try
        {
            if (_key is not null) return _key;
            byte[] bytes;
            if (auth.Value.SigningKey is { Length: > 0 } configured)
            {
                bytes = Decode(configured, "Sutazai:Auth:SigningKey");
                Source = "configuration";
            }
            else
            {
                bytes = Decode(await FromDatabaseAsync(cancellationToken), $"the database's {FlagKey}");
                Source = "database";
            }
            return _key = new SymmetricSecurityKey(bytes) { KeyId = Convert.ToHexString(SHA256.HashData(bytes))[..16] };
        }
        finally
        {
            _lock.Release();
        }
    }

    private async Task<string> FromDatabaseAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var legacy = Path.Combine(app.Value.DataPath, "keys", LegacyFileName);
        if (await StoredAsync(db, cancellationToken) is not { } stored)
        {
            var imported = File.Exists(legacy);
            var candidate = imported ? (await File.ReadAllTextAsync(legacy, cancellationToken)).Trim() : Convert.ToBase64String(RandomNumberGenerator.GetBytes(64));
            Decode(candidate, legacy);
            db.SystemFlags.Add(new SystemFlag { Key = FlagKey, Value = candidate, CreatedAt = time.GetUtcNow().UtcDateTime });
            try
            {
                await db.SaveChangesAsync(cancellationToken);
                stored = candidate;
                logger.LogInformation(imported
                    ? "Moved the JWT signing key from {Path} into the database, where every node reads it"
                    : "Generated the JWT signing key and stored it in the database, where every node reads it", legacy);
            }
            catch (DbUpdateException)
            {
                // Another node stored its key first (the flag's primary key): every node uses that one.
                db.ChangeTracker.Clear();
                stored = await StoredAsync(db, cancellationToken)
                    ?? throw new InvalidOperationException($"Could not store the JWT signing key in the database, and none is there ({FlagKey}).");
            }
        }
        if (File.Exists(legacy))
        {
            File.Delete(legacy);
            logger.LogInformation("Deleted {Path}: the JWT signing key is in the database now", legacy);
            DataProtectionKeyRing.DeleteIfEmpty(Path.GetDirectoryName(legacy)!);
        }
        return stored;
    }

    private static Task<string?> StoredAsync(AppDbContext db, CancellationToken cancellationToken) =>
        db.SystemFlags.AsNoTracking().Where(f => f.Key == FlagKey).Select(f => f.Value).FirstOrDefaultAsync(cancellationToken);

    private static byte[] Decode(string base64, string source)
    {
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(base64.Trim());
        }
        catch (FormatException)
        {
            throw new InvalidOperationException($"The JWT signing key in {source} is not base64.");
        }
        return bytes.Length >= 32 ? bytes : throw new InvalidOperationException($"The JWT signing key in {source} is shorter than 256 bits.");
    }
}

using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using Sutazai.Data;
using Sutazai.Server.Hosting;

namespace Sutazai.Server.Identity;

/// <summary>
/// Warm-up step for the data-protection key ring, which lives in the database (<c>data_protection_keys</c>): moves
/// the keys an earlier version kept per node in <c>&lt;DataDir&gt;/keys/data-protection</c> into it (cookies and
/// reset links already issued keep working), then reads the ring once, making the first key if the database has
/// none, so the first request does not pay for it.
/// </summary>
public sealed class DataProtectionKeyRing(IServiceProvider services, string dataPath) : IStartupStep
{
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var legacy = Path.Combine(dataPath, "keys", "data-protection");
        if (Directory.Exists(legacy))
        {
            await using var scope = services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
            var known = (await db.DataProtectionKeys.Select(k => k.FriendlyName).ToListAsync(cancellationToken)).ToHashSet(StringComparer.Ordinal);
            foreach (var file in Directory.GetFiles(legacy, "*.xml"))
            {
                // The file repository names each file after its element's friendly name, as the EF Core one stores it.
                var name = Path.GetFileNameWithoutExtension(file);
                if (!known.Contains(name))
                    db.DataProtectionKeys.Add(new DataProtectionKey { FriendlyName = name, Xml = await File.ReadAllTextAsync(cancellationToken: cancellationToken, path: file) });
            }
            await db.SaveChangesAsync(cancellationToken);
            Directory.Delete(legacy, recursive: true);
            DeleteIfEmpty(Path.GetDirectoryName(legacy)!);
            services.GetRequiredService<ILogger<DataProtectionKeyRing>>().LogInformation("Moved the data-protection keys from {Path} into the database", legacy);
        }
        services.GetRequiredService<IDataProtectionProvider>().CreateProtector("Sutazai.Warmup").Protect([0]);
    }

    /// <summary>Removes the earlier version's <c>keys</c> folder once both its keys have moved out of it.</summary>
    internal static void DeleteIfEmpty(string keysFolder)
    {
        if (Directory.Exists(keysFolder) && !Directory.EnumerateFileSystemEntries(keysFolder).Any()) Directory.Delete(keysFolder);
    }
}

using Sutazai.Data;
using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using Sutazai.Server.Configuration;
using Sutazai.Server.Hosting;

namespace Sutazai.Server.Identity;

/// <summary>
/// The HS256 signing key. Made from 64 random bytes on first run and kept in <c>&lt;DataDir&gt;/keys/jwt-signing.key</c>
/// (mode 600); there is no built-in default secret. Two processes starting together agree on one key because the
/// file is created with a no-overwrite move.
/// </summary>
public sealed class JwtKeyStore
{
    public const string FileName = "jwt-signing.key";

    public JwtKeyStore(IOptions<SutazaiOptions> options, ILogger<JwtKeyStore> logger)
    {
        var dir = Path.Combine(options.Value.DataPath, "keys");
        PrivateFiles.CreateDirectory(dir);
        KeyPath = Path.Combine(dir, FileName);
        if (!File.Exists(KeyPath))
        {
            var temp = KeyPath + "." + Guid.NewGuid().ToString("N") + ".tmp";
            using (var writer = new StreamWriter(temp, PrivateFiles.CreateOptions()))
            {
                writer.Write(Convert.ToBase64String(RandomNumberGenerator.GetBytes(64)));
            }
            try
            {
                File.Move(temp, KeyPath, overwrite: false);
                logger.LogInformation("Generated a new JWT signing key at {Path}", KeyPath);
            }
            catch (IOException) when (File.Exists(KeyPath))
            {
                File.Delete(temp);
            }
        }
        var bytes = Convert.FromBase64String(File.ReadAllText(KeyPath).Trim());
        if (bytes.Length < 32) throw new InvalidOperationException($"The JWT signing key at {KeyPath} is shorter than 256 bits; delete it to generate a new one.");
        Key = new SymmetricSecurityKey(bytes) { KeyId = Convert.ToHexString(SHA256.HashData(bytes))[..16] };
    }

    public string KeyPath { get; }

    public SymmetricSecurityKey Key { get; }
}

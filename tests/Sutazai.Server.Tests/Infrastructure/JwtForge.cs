using Microsoft.EntityFrameworkCore;
using System.Security.Claims;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Sutazai.Server.Tests.Infrastructure;

/// <summary>Builds bad tokens the way an attacker would: edited payloads, alg:none, and re-signed variants.</summary>
public sealed class JwtForge
{
    private readonly byte[] _key;
    private readonly JsonWebToken _original;

    private JwtForge(byte[] key, JsonWebToken original)
    {
        _key = key;
        _original = original;
    }

    /// <summary>Reads the server's signing key from its database (<c>system_flags</c>, where every node reads it).</summary>
    public static JwtForge From(TestApp app, string accessToken) =>
        new(Convert.FromBase64String(app.WithDbAsync(db => db.SystemFlags.Where(f => f.Key == Sutazai.Server.Identity.JwtKeyStore.FlagKey)
            .Select(f => f.Value!).SingleAsync()).GetAwaiter().GetResult()), new JsonWebToken(accessToken));

    public string Sign(DateTime? expires = null, string? audience = null, string? issuer = null, byte[]? key = null)
    {
        var claims = _original.Claims.Where(c => c.Type is not ("exp" or "nbf" or "iat" or "aud" or "iss")).ToList();
        var now = DateTime.UtcNow;
        var exp = expires ?? now.AddMinutes(10);
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Subject = new ClaimsIdentity(claims),
            Issuer = issuer ?? _original.Issuer,
            Audience = audience ?? _original.Audiences.Single(),
            IssuedAt = exp.AddMinutes(-15),
            NotBefore = exp.AddMinutes(-15),
            Expires = exp,
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(key ?? _key), SecurityAlgorithms.HmacSha256),
        });
    }

    public static string FlipSignature(string token)
    {
        var parts = token.Split('.');
        var sig = parts[2].ToCharArray();
        sig[0] = sig[0] == 'A' ? 'B' : 'A';
        return $"{parts[0]}.{parts[1]}.{new string(sig)}";
    }

    public static string WithPayloadChange(string token, string claim, string value)
    {
        var parts = token.Split('.');
        var payload = JsonNode.Parse(Base64UrlEncoder.Decode(parts[1]))!.AsObject();
        payload[claim] = value;
        return $"{parts[0]}.{Base64UrlEncoder.Encode(payload.ToJsonString())}.{parts[2]}";
    }

    public static string AlgNone(string token)
    {
        var parts = token.Split('.');
        var header = Base64UrlEncoder.Encode(Encoding.UTF8.GetBytes("{\"alg\":\"none\",\"typ\":\"JWT\"}"));
        return $"{header}.{parts[1]}.";
    }
}

public static class Mail
{
    /// <summary>The token printed after the line naming <paramref name="endpoint"/> in a mailed message.</summary>
    public static string Token(string eml, string endpoint)
    {
        var lines = eml.Replace("\r", "", StringComparison.Ordinal).Split('\n');
        var index = Array.FindIndex(lines, l => l.Contains(endpoint, StringComparison.Ordinal) && l.EndsWith(':'));
        Assert.True(index >= 0, $"No token for {endpoint} in:\n{eml}");
        return lines[index + 1].Trim();
    }
}

using System.Reflection;
using Microsoft.AspNetCore.Identity;
using Sutazai.Data.Entities;

namespace Sutazai.Server.Identity;

/// <summary>
/// SutazAI's password rules beyond Identity's character classes: at most 128 characters, and not a common password
/// (also when a common word is dressed up with capitals, leetspeak and a trailing number or symbol).
/// </summary>
public sealed class PasswordRules : IPasswordValidator<AppUser>
{
    public const int MinLength = 8;
    public const int MaxLength = 128;

    private static readonly Lazy<HashSet<string>> Common = new(LoadCommon);

    public Task<IdentityResult> ValidateAsync(UserManager<AppUser> manager, AppUser user, string? password)
    {
        var errors = new List<IdentityError>();
        password ??= "";
        if (password.Length > MaxLength)
            errors.Add(new IdentityError { Code = "PasswordTooLong", Description = $"Passwords must be at most {MaxLength} characters." });
        if (IsCommon(password))
            errors.Add(new IdentityError { Code = "PasswordTooCommon", Description = "This password is too common; choose one that is harder to guess." });
        if (user.UserName is { Length: >= 3 } name && password.Contains(name, StringComparison.OrdinalIgnoreCase))
            errors.Add(new IdentityError { Code = "PasswordContainsUserName", Description = "Passwords must not contain the username." });
        return Task.FromResult(errors.Count == 0 ? IdentityResult.Success : IdentityResult.Failed([.. errors]));
    }

    public static bool IsCommon(string password)
    {
        var lower = password.ToLowerInvariant();
        // "P@ssw0rd123!" → "password": strip the number or symbol tacked on, then undo leetspeak.
        var trailing = lower.TrimEnd(Decorations);
        var both = trailing.TrimStart(Decorations);
        string[] candidates = [lower, trailing, both, Plain(trailing), Plain(both)];
        return candidates.Any(c => c.Length > 0 && Common.Value.Contains(c));
    }

    private static readonly char[] Decorations = "0123456789!@#$%^&*()_+-=.,?~ ".ToCharArray();

    private static string Plain(string value) => new(value.Select(Unleet).ToArray());

    private static char Unleet(char c) => c switch
    {
        '@' or '4' => 'a',
        '3' => 'e',
        '1' or '!' => 'i',
        '0' => 'o',
        '$' or '5' => 's',
        '7' => 't',
        _ => c,
    };

    private static HashSet<string> LoadCommon()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("Sutazai.CommonPasswords")
            ?? throw new InvalidOperationException("The common-password list is missing from the assembly.");
        using var reader = new StreamReader(stream);
        var set = new HashSet<string>(StringComparer.Ordinal);
        while (reader.ReadLine() is { } line)
        {
            line = line.Trim();
            if (line.Length > 0 && !line.StartsWith('#')) set.Add(line.ToLowerInvariant());
        }
        return set;
    }
}

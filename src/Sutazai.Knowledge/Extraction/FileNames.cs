using System.Globalization;
using System.Text;

namespace Sutazai.Knowledge.Extraction;

/// <summary>Display names for uploaded files. Names are shown to users and stored, never used as file-system paths.</summary>
public static class FileNames
{
    /// <summary>The longest name <see cref="Sanitize"/> returns, in UTF-16 code units.</summary>
    public const int MaxLength = 200;

    /// <summary>The name used when nothing usable is left.</summary>
    public const string Fallback = "document";

    /// <summary>
    /// Keeps the last path segment (after '/' or '\'), drops control and formatting characters (including bidi
    /// overrides), collapses whitespace, trims spaces and dots at the ends and shortens the name to
    /// <see cref="MaxLength"/> while keeping a short extension. Empty results become <see cref="Fallback"/>.
    /// </summary>
    public static string Sanitize(string? fileName)
    {
        if (string.IsNullOrEmpty(fileName)) return Fallback;
        var lastSeparator = fileName.AsSpan().LastIndexOfAny('/', '\\');
        var segment = lastSeparator >= 0 ? fileName[(lastSeparator + 1)..] : fileName;

        var builder = new StringBuilder(segment.Length);
        var previousWasSpace = false;
        foreach (var c in segment)
        {
            var category = char.GetUnicodeCategory(c);
            if (category is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.LineSeparator
                or UnicodeCategory.ParagraphSeparator or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned)
            {
                continue;
            }

            if (char.IsWhiteSpace(c))
            {
                if (!previousWasSpace) builder.Append(' ');
                previousWasSpace = true;
                continue;
            }

            previousWasSpace = false;
            builder.Append(c);
        }

        var name = builder.ToString().Trim(' ', '.');
        if (name.Length == 0) return Fallback;
        if (name.Length <= MaxLength) return name;

        var extension = Path.GetExtension(name);
        if (extension.Length is 0 or > 16) return Truncate(name, MaxLength);
        return Truncate(name[..^extension.Length], MaxLength - extension.Length).TrimEnd(' ', '.') + extension;
    }

    private static string Truncate(string value, int length)
    {
        if (value.Length <= length) return value;
        if (char.IsHighSurrogate(value[length - 1])) length--;
        return value[..length];
    }
}

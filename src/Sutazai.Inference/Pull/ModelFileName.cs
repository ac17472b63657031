using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace Sutazai.Inference.Pull;

/// <summary>
/// Rules for the name a downloaded model gets in the models directory: one plain file name ending in <c>.gguf</c>,
/// valid on Linux, macOS and Windows, that cannot leave the directory.
/// </summary>
public static class ModelFileName
{
    public const string Extension = ".gguf";

    public const int MaxUtf8Bytes = 255;

    private const string Fallback = "model";

    private static readonly char[] WindowsInvalid = ['<', '>', ':', '"', '|', '?', '*'];

    private static readonly HashSet<string> WindowsReserved = new(StringComparer.OrdinalIgnoreCase)
    {
        "CON", "PRN", "AUX", "NUL",
        "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
        "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
    };

    /// <summary>Checks a name as given; it is never altered. The error says what is wrong.</summary>
    public static bool IsValid(string? name, [NotNullWhen(false)] out string? error)
    {
        error = Check(name);
        return error is null;
    }

    /// <summary>
    /// Turns a suggested name (the last segment of a URL, say) into a valid one: forbidden characters become '_',
    /// '..' runs collapse, leading dots go, <c>.gguf</c> is appended when missing and the stem is shortened to fit.
    /// </summary>
    public static string Sanitize(string? suggested)
    {
        var builder = new StringBuilder(suggested?.Length ?? 0);
        foreach (var c in suggested ?? "")
        {
            builder.Append(char.IsControl(c) || c is '/' or '\\' || WindowsInvalid.Contains(c) ? '_' : c);
        }

        var name = builder.ToString();
        while (name.Contains("..", StringComparison.Ordinal))
        {
            name = name.Replace("..", ".", StringComparison.Ordinal);
        }

        name = name.Trim();
        var stem = name.EndsWith(Extension, StringComparison.OrdinalIgnoreCase) ? name[..^Extension.Length] : name;
        stem = stem.Trim().Trim('.').Trim();
        if (stem.Length == 0)
        {
            stem = Fallback;
        }

        if (WindowsReserved.Contains(stem.Split('.')[0]))
        {
            stem = "_" + stem;
        }

        while (Encoding.UTF8.GetByteCount(stem) + Extension.Length > MaxUtf8Bytes)
        {
            stem = stem[..^(char.IsLowSurrogate(stem[^1]) && stem.Length > 1 ? 2 : 1)];
        }

        return stem.TrimEnd('.', ' ') + Extension;
    }

    private static string? Check(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return "File name is empty.";
        }

        if (name.Any(char.IsControl))
        {
            return "File name must not contain control characters.";
        }

        if (name.Contains('/', StringComparison.Ordinal) || name.Contains('\\', StringComparison.Ordinal))
        {
            return "File name must not contain path separators.";
        }

        if (name.Contains("..", StringComparison.Ordinal))
        {
            return "File name must not contain '..'.";
        }

        if (name[0] == '.')
        {
            return "File name must not start with '.'.";
        }

        if (char.IsWhiteSpace(name[0]) || char.IsWhiteSpace(name[^1]))
        {
            return "File name must not start or end with whitespace.";
        }

        if (name.IndexOfAny(WindowsInvalid) >= 0)
        {
            return "File name must not contain any of < > : \" | ? *.";
        }

        if (Encoding.UTF8.GetByteCount(name) > MaxUtf8Bytes)
        {
            return $"File name is longer than {MaxUtf8Bytes} bytes.";
        }

        if (!name.EndsWith(Extension, StringComparison.OrdinalIgnoreCase) || name.Length == Extension.Length)
        {
            return "File name must end in .gguf.";
        }

        if (WindowsReserved.Contains(name.Split('.')[0]))
        {
            return $"File name '{name}' is reserved on Windows.";
        }

        return null;
    }
}

using System.Text;

namespace Sutazai.Agents.Tools;

internal static class TextCaps
{
    private static readonly UTF8Encoding Lenient = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    /// <summary>Decodes at most <paramref name="count"/> bytes as UTF-8, cutting before a character split by the cap.</summary>
    public static string DecodePrefix(ReadOnlySpan<byte> bytes, int count, bool cut)
    {
        count = Math.Min(count, bytes.Length);
        if (cut)
        {
            // Step back over continuation bytes (10xxxxxx) and the lead byte of a sequence the cap split.
            var end = count;
            var back = 0;
            while (end > 0 && back < 4 && (bytes[end - 1] & 0xC0) == 0x80)
            {
                end--;
                back++;
            }
            if (end > 0 && bytes[end - 1] >= 0xC0)
            {
                var lead = bytes[end - 1];
                var length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
                count = back + 1 >= length ? end - 1 + length : end - 1;
            }
        }
        return Lenient.GetString(bytes[..count]);
    }

    /// <summary>The first <paramref name="max"/> characters, not splitting a surrogate pair.</summary>
    public static string Truncate(string text, int max)
    {
        if (text.Length <= max) return text;
        var end = max;
        if (end > 0 && char.IsHighSurrogate(text[end - 1])) end--;
        return text[..end];
    }
}

using System.Text;
using System.Text.RegularExpressions;

namespace Sutazai.Knowledge.Extraction;

/// <summary>
/// Markdown: ATX headings ("#" to "######") start sections and form the heading path; everything else, code blocks
/// included, is kept verbatim. Lines inside ``` or ~~~ fences are never headings. The first H1 is the title.
/// Setext (underlined) headings are kept as text.
/// </summary>
internal static partial class MarkdownReader
{
    [GeneratedRegex(@"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")]
    private static partial Regex AtxHeading();

    [GeneratedRegex(@"^ {0,3}(`{3,}|~{3,})")]
    private static partial Regex Fence();

    public static ExtractedDocument Read(string text, string? fallbackTitle)
    {
        var sections = new List<ExtractedSection>();
        var headings = new HeadingPath();
        var body = new StringBuilder();
        string? title = null;
        string? fence = null;

        foreach (var line in text.Split('\n'))
        {
            if (fence is not null)
            {
                body.Append(line).Append('\n');
                var close = Fence().Match(line);
                if (close.Success && close.Groups[1].Value[0] == fence[0] && close.Groups[1].Length >= fence.Length
                    && line.Trim().Trim(fence[0]).Length == 0)
                {
                    fence = null;
                }

                continue;
            }

            var open = Fence().Match(line);
            if (open.Success)
            {
                fence = open.Groups[1].Value;
                body.Append(line).Append('\n');
                continue;
            }

            var heading = AtxHeading().Match(line);
            if (heading.Success)
            {
                Flush(sections, body, headings.Current);
                var level = heading.Groups[1].Length;
                var headingText = heading.Groups[2].Value.Trim();
                if (level == 1 && title is null && headingText.Length > 0) title = headingText;
                headings.Push(level, headingText);
                continue;
            }

            body.Append(line).Append('\n');
        }

        Flush(sections, body, headings.Current);
        return new ExtractedDocument(title ?? fallbackTitle, sections);
    }

    private static void Flush(List<ExtractedSection> sections, StringBuilder body, string? heading)
    {
        var text = body.ToString().Trim('\n', ' ', '\t');
        body.Clear();
        if (text.Length > 0) sections.Add(new ExtractedSection(text, heading));
    }
}

/// <summary>The stack of open headings; a heading closes every open heading of the same or a deeper level.</summary>
internal sealed class HeadingPath
{
    private readonly List<(int Level, string Text)> _stack = [];

    /// <summary>The path joined by " &gt; ", or null when no heading is open.</summary>
    public string? Current => _stack.Count == 0 ? null : string.Join(" > ", _stack.Select(h => h.Text));

    public void Push(int level, string text)
    {
        while (_stack.Count > 0 && _stack[^1].Level >= level) _stack.RemoveAt(_stack.Count - 1);
        if (text.Length > 0) _stack.Add((level, text));
    }
}

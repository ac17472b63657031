using System.Text;
using AngleSharp.Dom;
using AngleSharp.Html.Parser;
using SmartReader;

namespace Sutazai.Knowledge.Extraction;

/// <summary>
/// HTML: when readability is on and SmartReader finds an article, only the article is read; otherwise the whole body
/// minus scripts, styles, templates, navigation, asides, footers, forms and embedded media. h1–h6 start sections and
/// form the heading path; block elements (p, div, li, tr, …) become paragraphs separated by a blank line; list items
/// start with "- ", table cells are separated by a tab; whitespace is collapsed except inside &lt;pre&gt;. The title is
/// the &lt;title&gt; element, else the article's title, else the file name. Readability drops a leading heading that
/// repeats the title, so such a heading is not part of the heading path.
/// </summary>
internal static class HtmlReader
{
    private static readonly HashSet<string> Skipped = new(StringComparer.Ordinal)
    {
        "script", "style", "noscript", "template", "nav", "aside", "footer", "form", "svg", "iframe", "object",
        "embed", "canvas", "button", "select", "head",
    };

    private static readonly HashSet<string> Blocks = new(StringComparer.Ordinal)
    {
        "p", "div", "section", "article", "main", "header", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table",
        "thead", "tbody", "tfoot", "blockquote", "pre", "figure", "figcaption", "address", "hr", "details", "summary",
        "body", "caption",
    };

    public static ExtractedDocument Read(string html, string? fallbackTitle, bool useReadability)
    {
        var parser = new HtmlParser();
        var document = parser.ParseDocument(html);
        var title = Collapse(document.Title ?? "").Trim();

        INode? root = null;
        if (useReadability)
        {
            var article = new Reader("https://localhost/", html).GetArticle();
            if (article.IsReadable && !string.IsNullOrWhiteSpace(article.Content))
            {
                root = parser.ParseDocument(article.Content).Body;
                if (title.Length == 0) title = Collapse(article.Title ?? "").Trim();
            }
        }

        root ??= document.Body ?? (INode)document.DocumentElement;
        var walker = new Walker();
        walker.Visit(root);
        walker.FlushSection();
        return new ExtractedDocument(title.Length > 0 ? title : fallbackTitle, walker.Sections);
    }

    private static string Collapse(string text)
    {
        var builder = new StringBuilder(text.Length);
        var space = false;
        foreach (var c in text)
        {
            if (char.IsWhiteSpace(c))
            {
                space = true;
                continue;
            }

            if (space) builder.Append(' ');
            space = false;
            builder.Append(c);
        }

        if (space) builder.Append(' ');
        return builder.ToString();
    }

    private sealed class Walker
    {
        private readonly HeadingPath _headings = new();
        private readonly StringBuilder _paragraph = new();
        private readonly List<string> _paragraphs = [];
        private int _preDepth;

        public List<ExtractedSection> Sections { get; } = [];

        public void Visit(INode node)
        {
            switch (node)
            {
                case IText text:
                    AppendText(text.Data);
                    return;
                case IElement element:
                    VisitElement(element);
                    return;
                default:
                    foreach (var child in node.ChildNodes) Visit(child);
                    return;
            }
        }

        private void VisitElement(IElement element)
        {
            var name = element.LocalName;
            if (Skipped.Contains(name) || element.HasAttribute("hidden")) return;
            if (name.Length == 2 && name[0] == 'h' && name[1] is >= '1' and <= '6')
            {
                FlushSection();
                _headings.Push(name[1] - '0', Collapse(element.TextContent).Trim());
                return;
            }

            switch (name)
            {
                case "br":
                    _paragraph.Append('\n');
                    return;
                case "td" or "th":
                    foreach (var child in element.ChildNodes) Visit(child);
                    TrimTrailingSpace();
                    _paragraph.Append('\t');
                    return;
            }

            var block = Blocks.Contains(name);
            if (block) FlushParagraph();
            if (name == "li") _paragraph.Append("- ");
            if (name == "pre") _preDepth++;
            foreach (var child in element.ChildNodes) Visit(child);
            if (block) FlushParagraph();
            if (name == "pre") _preDepth--;
        }

        private void AppendText(string data)
        {
            if (_preDepth > 0)
            {
                _paragraph.Append(data);
                return;
            }

            var collapsed = Collapse(data);
            if (collapsed.Length == 0) return;
            if (collapsed[0] == ' ' && (_paragraph.Length == 0 || char.IsWhiteSpace(_paragraph[^1]))) collapsed = collapsed[1..];
            _paragraph.Append(collapsed);
        }

        private void TrimTrailingSpace()
        {
            while (_paragraph.Length > 0 && _paragraph[^1] == ' ') _paragraph.Length--;
        }

        private void FlushParagraph()
        {
            var text = _preDepth > 0 ? _paragraph.ToString().Trim('\n') : TrimLines(_paragraph.ToString());
            _paragraph.Clear();
            if (text.Trim().Length > 0 && text.Trim() != "-") _paragraphs.Add(text);
        }

        private static string TrimLines(string text) =>
            string.Join('\n', text.Split('\n').Select(line => line.Trim(' ', '\t')).Where(line => line.Length > 0));

        public void FlushSection()
        {
            FlushParagraph();
            if (_paragraphs.Count > 0) Sections.Add(new ExtractedSection(string.Join("\n\n", _paragraphs), _headings.Current));
            _paragraphs.Clear();
        }
    }
}

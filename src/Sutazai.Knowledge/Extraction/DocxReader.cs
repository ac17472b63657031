using System.Text;
using System.Text.RegularExpressions;
using DocumentFormat.OpenXml;
using DocumentFormat.OpenXml.Packaging;
using DocumentFormat.OpenXml.Wordprocessing;

namespace Sutazai.Knowledge.Extraction;

/// <summary>
/// DOCX via Open XML: body paragraphs in order, each one paragraph of the output (separated by a blank line). Paragraphs
/// styled Heading 1–6 (by style id "HeadingN" or style name "heading N") start sections and form the heading path; a
/// "Title" paragraph becomes the title when the core properties have none. Tables become one paragraph each: rows on
/// separate lines, cells separated by a tab (a cell's paragraphs joined by a space). Tabs and breaks inside runs are
/// kept as "\t" and "\n"; deleted (tracked) text is left out.
/// </summary>
internal static partial class DocxReader
{
    [GeneratedRegex(@"^heading ?([1-6])$", RegexOptions.IgnoreCase)]
    private static partial Regex HeadingStyle();

    public static ExtractedDocument Read(byte[] bytes, string? fallbackTitle, CharacterBudget budget, CancellationToken cancellationToken)
    {
        try
        {
            using var stream = new MemoryStream(bytes, writable: false);
            using var document = WordprocessingDocument.Open(stream, false);
            var body = document.MainDocumentPart?.Document?.Body
                ?? throw new DocumentExtractionException("The Word document has no body.");
            var styleNames = document.MainDocumentPart!.StyleDefinitionsPart?.Styles?.Elements<Style>()
                .Where(s => s.StyleId?.Value is not null && s.StyleName?.Val?.Value is not null)
                .GroupBy(s => s.StyleId!.Value!, StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => g.First().StyleName!.Val!.Value!, StringComparer.Ordinal)
                ?? new Dictionary<string, string>(StringComparer.Ordinal);

            var reader = new Reader(styleNames, budget, cancellationToken);
            reader.VisitChildren(body);
            reader.FlushSection();
            var title = document.PackageProperties.Title?.Trim();
            if (string.IsNullOrEmpty(title)) title = reader.Title;
            return new ExtractedDocument(string.IsNullOrEmpty(title) ? fallbackTitle : title, reader.Sections);
        }
        catch (Exception ex) when (ex is not DocumentExtractionException and not OperationCanceledException)
        {
            throw new DocumentExtractionException($"The Word document could not be read: {ex.Message}", ex);
        }
    }

    private sealed class Reader(Dictionary<string, string> styleNames, CharacterBudget budget, CancellationToken cancellationToken)
    {
        private readonly HeadingPath _headings = new();
        private readonly List<string> _paragraphs = [];

        public List<ExtractedSection> Sections { get; } = [];

        public string? Title { get; private set; }

        public void VisitChildren(OpenXmlElement container)
        {
            foreach (var child in container.ChildElements)
            {
                switch (child)
                {
                    case Paragraph paragraph:
                        VisitParagraph(paragraph);
                        break;
                    case Table table:
                        Add(TableText(table));
                        break;
                    case SdtBlock or SdtContentBlock or CustomXmlBlock:
                        VisitChildren(child);
                        break;
                }
            }
        }

        private void VisitParagraph(Paragraph paragraph)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var text = ParagraphText(paragraph).Trim();
            var styleId = paragraph.ParagraphProperties?.ParagraphStyleId?.Val?.Value;
            var styleName = styleId is not null && styleNames.TryGetValue(styleId, out var name) ? name : styleId;
            var level = HeadingLevel(styleId) ?? HeadingLevel(styleName);
            if (level is not null)
            {
                FlushSection();
                _headings.Push(level.Value, text);
                return;
            }

            if (text.Length > 0 && Title is null && (styleId == "Title" || string.Equals(styleName, "Title", StringComparison.OrdinalIgnoreCase)))
            {
                Title = text;
                return;
            }

            Add(text);
        }

        private static int? HeadingLevel(string? style)
        {
            if (style is null) return null;
            var match = HeadingStyle().Match(style);
            return match.Success ? match.Groups[1].Value[0] - '0' : null;
        }

        private void Add(string text)
        {
            if (text.Length == 0) return;
            budget.Consume(text.Length + 2);
            _paragraphs.Add(text);
        }

        public void FlushSection()
        {
            if (_paragraphs.Count > 0) Sections.Add(new ExtractedSection(string.Join("\n\n", _paragraphs), _headings.Current));
            _paragraphs.Clear();
        }

        private static string TableText(Table table) =>
            string.Join('\n', table.Elements<TableRow>()
                .Select(row => string.Join('\t', row.Elements<TableCell>()
                    .Select(cell => string.Join(' ', cell.Elements<Paragraph>().Select(p => ParagraphText(p).Trim()).Where(t => t.Length > 0)))))
                .Where(line => line.Trim().Length > 0));

        private static string ParagraphText(Paragraph paragraph)
        {
            var builder = new StringBuilder();
            foreach (var element in paragraph.Descendants())
            {
                switch (element)
                {
                    case Text text:
                        builder.Append(text.Text);
                        break;
                    case TabChar:
                        builder.Append('\t');
                        break;
                    case Break or CarriageReturn:
                        builder.Append('\n');
                        break;
                }
            }

            return builder.ToString();
        }
    }
}

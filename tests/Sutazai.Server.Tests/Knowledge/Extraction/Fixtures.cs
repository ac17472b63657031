using System.Text;
using DocumentFormat.OpenXml;
using DocumentFormat.OpenXml.Packaging;
using DocumentFormat.OpenXml.Wordprocessing;
using PageSize = UglyToad.PdfPig.Content.PageSize;
using UglyToad.PdfPig.Core;
using UglyToad.PdfPig.Fonts.Standard14Fonts;
using UglyToad.PdfPig.Writer;

namespace Sutazai.Server.Tests.Knowledge.Extraction;

/// <summary>Documents generated in code for the extraction tests.</summary>
public static class Fixtures
{
    /// <summary>A two-page PDF titled "Test Deck": page 1 has two lines, page 2 one.</summary>
    public static byte[] Pdf()
    {
        var builder = new PdfDocumentBuilder();
        builder.DocumentInformation.Title = "Test Deck";
        var font = builder.AddStandard14Font(Standard14Font.Helvetica);
        var first = builder.AddPage(PageSize.A4);
        first.AddText("Hello PDF world.", 12, new PdfPoint(50, 700), font);
        first.AddText("Second line here", 12, new PdfPoint(50, 680), font);
        var second = builder.AddPage(PageSize.A4);
        second.AddText("Page two text", 12, new PdfPoint(50, 700), font);
        return builder.Build();
    }

    /// <summary>A DOCX with a Title paragraph, Heading1 + two paragraphs, Heading2 + a table + a paragraph.</summary>
    public static byte[] Docx()
    {
        using var stream = new MemoryStream();
        using (var document = WordprocessingDocument.Create(stream, WordprocessingDocumentType.Document))
        {
            var main = document.AddMainDocumentPart();
            main.Document = new Document(new Body(
                Paragraph("Quarterly Report", "Title"),
                Paragraph("Overview", "Heading1"),
                Paragraph("First paragraph."),
                Paragraph("Second paragraph."),
                Paragraph("Details", "Heading2"),
                new Table(Row("Name", "Qty"), Row("Apples", "3")),
                Paragraph("After table.")));
        }

        return stream.ToArray();
    }

    private static Paragraph Paragraph(string text, string? style = null)
    {
        var paragraph = new Paragraph(new Run(new Text(text)));
        if (style is not null) paragraph.PrependChild(new ParagraphProperties(new ParagraphStyleId { Val = style }));
        return paragraph;
    }

    private static TableRow Row(params string[] cells) =>
        new(cells.Select(c => (OpenXmlElement)new TableCell(Paragraph(c))));

    public static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);
}

using System.Text;
using UglyToad.PdfPig;
using UglyToad.PdfPig.Content;
using UglyToad.PdfPig.Exceptions;

namespace Sutazai.Knowledge.Extraction;

/// <summary>
/// PDF via PdfPig: one section per page that has text (page numbers are 1-based; pages without text, such as scanned
/// images, are skipped). Words are grouped into lines by baseline (top to bottom), ordered left to right within a line
/// and joined by single spaces; lines are joined by "\n". The title is the document information's Title.
/// </summary>
internal static class PdfReader
{
    public static ExtractedDocument Read(byte[] bytes, string? fallbackTitle, CharacterBudget budget, CancellationToken cancellationToken)
    {
        try
        {
            using var document = PdfDocument.Open(bytes);
            var sections = new List<ExtractedSection>();
            for (var number = 1; number <= document.NumberOfPages; number++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var text = PageText(document.GetPage(number));
                if (text.Length == 0) continue;
                budget.Consume(text.Length);
                sections.Add(new ExtractedSection(text, null, number));
            }

            var title = document.Information.Title?.Trim();
            return new ExtractedDocument(string.IsNullOrEmpty(title) ? fallbackTitle : title, sections);
        }
        catch (PdfDocumentEncryptedException ex)
        {
            throw new DocumentExtractionException(DocumentExtractionError.Encrypted, "The PDF is encrypted; upload an unprotected copy.", ex);
        }
        catch (Exception ex) when (ex is not DocumentExtractionException and not OperationCanceledException)
        {
            throw new DocumentExtractionException($"The PDF could not be read: {ex.Message}", ex);
        }
    }

    private static string PageText(Page page)
    {
        var lines = new List<(double Baseline, double Height, List<Word> Words)>();
        foreach (var word in page.GetWords().Where(w => !string.IsNullOrWhiteSpace(w.Text)).OrderByDescending(w => w.BoundingBox.Bottom))
        {
            var baseline = word.BoundingBox.Bottom;
            var height = Math.Max(word.BoundingBox.Height, 1);
            var index = lines.FindIndex(l => Math.Abs(l.Baseline - baseline) <= Math.Min(l.Height, height) / 2);
            if (index < 0) lines.Add((baseline, height, [word]));
            else lines[index].Words.Add(word);
        }

        var output = new StringBuilder();
        foreach (var line in lines.OrderByDescending(l => l.Baseline))
        {
            if (output.Length > 0) output.Append('\n');
            output.AppendJoin(' ', line.Words.OrderBy(w => w.BoundingBox.Left).Select(w => w.Text));
        }

        return output.ToString().Trim();
    }
}

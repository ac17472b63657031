using System.Text;

namespace Sutazai.Knowledge.Extraction;

/// <summary>
/// The default <see cref="IDocumentExtractor"/>: dispatches on <see cref="DocumentKind"/> to the format readers and
/// enforces <see cref="ExtractionOptions.MaxInputBytes"/> and <see cref="ExtractionOptions.MaxCharacters"/>.
/// Text, Markdown, CSV, JSON and source code must be UTF-8 (a BOM is allowed); line endings become "\n".
/// </summary>
public sealed class DocumentExtractor(ExtractionOptions? options = null) : IDocumentExtractor
{
    private readonly ExtractionOptions _options = options ?? new ExtractionOptions();

    public async Task<ExtractedDocument> ExtractAsync(Stream content, DocumentKind kind, string? fileName, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(content);
        var title = fileName is null ? null : FileNames.Sanitize(fileName);
        var budget = new CharacterBudget(_options.MaxCharacters);

        var document = kind switch
        {
            DocumentKind.Text => new ExtractedDocument(title, Single(await ReadTextAsync(content, budget, cancellationToken))),
            DocumentKind.SourceCode => new ExtractedDocument(title, Single(await ReadTextAsync(content, budget, cancellationToken))),
            DocumentKind.Markdown => MarkdownReader.Read(await ReadTextAsync(content, budget, cancellationToken), title),
            DocumentKind.Csv => new ExtractedDocument(title, Single(CsvReader.Flatten(await ReadTextAsync(content, budget, cancellationToken), budget))),
            DocumentKind.Json => new ExtractedDocument(title, Single(JsonFlattener.Flatten(await ReadTextAsync(content, budget, cancellationToken), budget))),
            DocumentKind.Html => HtmlReader.Read(await ReadTextAsync(content, budget, cancellationToken), title, _options.UseReadability),
            DocumentKind.Pdf => PdfReader.Read(await ReadBytesAsync(content, cancellationToken), title, budget, cancellationToken),
            DocumentKind.Docx => DocxReader.Read(await ReadBytesAsync(content, cancellationToken), title, budget, cancellationToken),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown document kind."),
        };

        var total = document.CharacterCount;
        if (total > _options.MaxCharacters) throw CharacterBudget.TooLarge(_options.MaxCharacters);
        return document;
    }

    private static IReadOnlyList<ExtractedSection> Single(string text) =>
        string.IsNullOrWhiteSpace(text) ? [] : [new ExtractedSection(text)];

    private async Task<byte[]> ReadBytesAsync(Stream content, CancellationToken cancellationToken)
    {
        if (content.CanSeek && content.Length - content.Position > _options.MaxInputBytes) throw InputTooLarge();
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await content.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > _options.MaxInputBytes) throw InputTooLarge();
            buffer.Write(chunk, 0, read);
        }

        return buffer.ToArray();
    }

    private DocumentExtractionException InputTooLarge() =>
        new(DocumentExtractionError.TooLarge, $"The file is larger than the limit of {_options.MaxInputBytes:N0} bytes.");

    /// <summary>Strict UTF-8 (BOM skipped), "\r\n" and "\r" become "\n", surrounding whitespace trimmed.</summary>
    private async Task<string> ReadTextAsync(Stream content, CharacterBudget budget, CancellationToken cancellationToken)
    {
        var bytes = await ReadBytesAsync(content, cancellationToken);
        var span = bytes.AsSpan();
        if (span.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) span = span[3..];
        if (span.Contains((byte)0)) throw new DocumentExtractionException("The file contains binary data (NUL bytes), not text.");
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(span);
        }
        catch (DecoderFallbackException ex)
        {
            throw new DocumentExtractionException("The file is not valid UTF-8 text.", ex);
        }

        budget.Check(text.Length);
        return text.ReplaceLineEndings("\n").Trim();
    }
}

/// <summary>Fails extraction early once the text grows past the configured limit.</summary>
internal sealed class CharacterBudget(int maxCharacters)
{
    private long _used;

    /// <summary>Fails when <paramref name="length"/> alone exceeds the limit (for whole texts read before parsing).</summary>
    public void Check(long length)
    {
        if (length > maxCharacters) throw TooLarge(maxCharacters);
    }

    /// <summary>Adds <paramref name="length"/> characters to the running total.</summary>
    public void Consume(long length)
    {
        _used += length;
        if (_used > maxCharacters) throw TooLarge(maxCharacters);
    }

    public static DocumentExtractionException TooLarge(int maxCharacters) =>
        new(DocumentExtractionError.TooLarge, $"The document's text is longer than the limit of {maxCharacters:N0} characters.");
}

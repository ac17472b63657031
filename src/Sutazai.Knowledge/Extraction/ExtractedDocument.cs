namespace Sutazai.Knowledge.Extraction;

/// <summary>
/// A run of text from one place in a document.
/// </summary>
/// <param name="Text">The text; paragraphs are separated by a blank line ("\n\n"), lines by "\n".</param>
/// <param name="Heading">The heading path, outermost first, joined by " &gt; " (e.g. "Install &gt; Linux"); null outside any heading.</param>
/// <param name="Page">The 1-based page number (PDF only); null otherwise.</param>
public sealed record ExtractedSection(string Text, string? Heading = null, int? Page = null);

/// <summary>
/// The text of a document in reading order. <see cref="Title"/> is the document's own title (HTML &lt;title&gt;, first
/// Markdown H1, PDF/DOCX metadata) or, failing that, the sanitized file name when one was given.
/// </summary>
public sealed record ExtractedDocument(string? Title, IReadOnlyList<ExtractedSection> Sections)
{
    /// <summary>Total characters over all sections.</summary>
    public long CharacterCount => Sections.Sum(s => (long)s.Text.Length);
}

/// <summary>Why extraction failed.</summary>
public enum DocumentExtractionError
{
    /// <summary>The file is corrupt or not what its kind says (bad PDF, DOCX, JSON, encoding).</summary>
    Malformed,

    /// <summary>The file or its text exceeds the configured limits.</summary>
    TooLarge,

    /// <summary>The file is encrypted or password-protected.</summary>
    Encrypted,
}

/// <summary>A document could not be extracted; <see cref="Exception.Message"/> is safe to show to the user.</summary>
public sealed class DocumentExtractionException : Exception
{
    public DocumentExtractionException(DocumentExtractionError error, string message, Exception? innerException = null)
        : base(message, innerException) => Error = error;

    public DocumentExtractionException()
        : this(DocumentExtractionError.Malformed, "The document could not be extracted.")
    {
    }

    public DocumentExtractionException(string message)
        : this(DocumentExtractionError.Malformed, message)
    {
    }

    public DocumentExtractionException(string message, Exception innerException)
        : this(DocumentExtractionError.Malformed, message, innerException)
    {
    }

    public DocumentExtractionError Error { get; }
}

/// <summary>Limits and switches for <see cref="DocumentExtractor"/>.</summary>
public sealed class ExtractionOptions
{
    /// <summary>Most characters of extracted text per document (default 5,000,000); more fails with <see cref="DocumentExtractionError.TooLarge"/>.</summary>
    public int MaxCharacters { get; init; } = 5_000_000;

    /// <summary>Most bytes read from the input stream (default 100 MiB).</summary>
    public long MaxInputBytes { get; init; } = 100L * 1024 * 1024;

    /// <summary>Try SmartReader's readability extraction on HTML before falling back to the whole body (default true).</summary>
    public bool UseReadability { get; init; } = true;
}

/// <summary>Extracts a document's text, in sections, from a stream of a known <see cref="DocumentKind"/>.</summary>
public interface IDocumentExtractor
{
    /// <summary>Extracts <paramref name="content"/>; <paramref name="fileName"/> (optional) titles documents without a title of their own.</summary>
    /// <exception cref="DocumentExtractionException">The document is malformed, encrypted or too large.</exception>
    Task<ExtractedDocument> ExtractAsync(Stream content, DocumentKind kind, string? fileName, CancellationToken cancellationToken);

    /// <inheritdoc cref="ExtractAsync(Stream, DocumentKind, string?, CancellationToken)"/>
    Task<ExtractedDocument> ExtractAsync(Stream content, DocumentKind kind, CancellationToken cancellationToken) =>
        ExtractAsync(content, kind, null, cancellationToken);
}

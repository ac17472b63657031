namespace Sutazai.Knowledge.Extraction;

/// <summary>The document formats the knowledge base can extract text from.</summary>
public enum DocumentKind
{
    Text,
    Markdown,
    Html,
    Pdf,
    Docx,
    Csv,
    Json,
    SourceCode,
}

/// <summary>
/// The outcome of <see cref="DocumentTypeDetector.Detect"/>: either an accepted <see cref="Kind"/> or a
/// <see cref="RejectionReason"/> meant for the user (the API answers 415 with it).
/// </summary>
public sealed record DocumentDetection
{
    private DocumentDetection(DocumentKind? kind, string? rejectionReason)
    {
        Kind = kind;
        RejectionReason = rejectionReason;
    }

    /// <summary>The detected kind; null when rejected.</summary>
    public DocumentKind? Kind { get; }

    /// <summary>Why the file was rejected; null when accepted.</summary>
    public string? RejectionReason { get; }

    public bool IsAccepted => Kind is not null;

    public static DocumentDetection Accept(DocumentKind kind) => new(kind, null);

    public static DocumentDetection Reject(string reason) => new(null, reason);
}

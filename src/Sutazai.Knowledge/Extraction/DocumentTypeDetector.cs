using System.Buffers;
using System.Text;

namespace Sutazai.Knowledge.Extraction;

/// <summary>
/// Decides what an uploaded file is from its name and its first bytes. Both must agree: binary formats are recognised
/// by signature (PDF needs "%PDF-" and a .pdf name, DOCX a ZIP header and a .docx name), text formats by an extension
/// allowlist and UTF-8 content (a BOM is allowed, NUL bytes are not). Files without an extension are accepted as HTML
/// when the content starts like HTML, else as plain text. Everything else is rejected with a reason for the user.
/// </summary>
public static class DocumentTypeDetector
{
    /// <summary>How many leading bytes callers should pass as the head (more is fine; only this many are examined).</summary>
    public const int HeadLength = 8192;

    private static readonly Dictionary<string, DocumentKind> TextExtensions = new(StringComparer.Ordinal)
    {
        [".txt"] = DocumentKind.Text, [".text"] = DocumentKind.Text, [".log"] = DocumentKind.Text,
        [".md"] = DocumentKind.Markdown, [".markdown"] = DocumentKind.Markdown,
        [".html"] = DocumentKind.Html, [".htm"] = DocumentKind.Html,
        [".csv"] = DocumentKind.Csv, [".tsv"] = DocumentKind.Csv,
        [".json"] = DocumentKind.Json,
    };

    /// <summary>Source-code and configuration extensions accepted as <see cref="DocumentKind.SourceCode"/>.</summary>
    public static readonly IReadOnlySet<string> CodeExtensions = new HashSet<string>(StringComparer.Ordinal)
    {
        ".cs", ".fs", ".vb", ".py", ".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".java", ".go", ".rs", ".c", ".cc",
        ".cpp", ".cxx", ".h", ".hpp", ".hh", ".rb", ".php", ".sh", ".bash", ".zsh", ".ps1", ".sql", ".yaml", ".yml",
        ".toml", ".ini", ".xml", ".kt", ".kts", ".swift", ".scala", ".lua", ".pl", ".r", ".dart", ".css", ".scss",
        ".razor", ".cshtml", ".csproj", ".props", ".targets", ".gradle", ".proto", ".graphql",
    };

    private static ReadOnlySpan<byte> PdfMagic => "%PDF-"u8;
    private static ReadOnlySpan<byte> ZipMagic => [0x50, 0x4B, 0x03, 0x04];
    private static ReadOnlySpan<byte> Magic1 => [0x89, 0x50, 0x4E, 0x47];
    private static ReadOnlySpan<byte> Magic2 => [0xFF, 0xD8, 0xFF];
    private static ReadOnlySpan<byte> Magic3 => [0x7F, 0x45, 0x4C, 0x46];
    private static ReadOnlySpan<byte> Magic4 => [0x1F, 0x8B];
    private static ReadOnlySpan<byte> Magic5 => [0xD0, 0xCF, 0x11, 0xE0];
    private static ReadOnlySpan<byte> Magic6 => [0x37, 0x7A, 0xBC, 0xAF];
    private static ReadOnlySpan<byte> Utf8Bom => [0xEF, 0xBB, 0xBF];

    /// <summary>Detects the kind of <paramref name="fileName"/> from its first bytes (at least <see cref="HeadLength"/> when the file is that long).</summary>
    public static DocumentDetection Detect(string fileName, ReadOnlySpan<byte> head)
    {
        var name = FileNames.Sanitize(fileName);
        var extension = Path.GetExtension(name).ToLowerInvariant();
        if (head.Length > HeadLength) head = head[..HeadLength];
        if (head.IsEmpty) return DocumentDetection.Reject("The file is empty.");

        var binary = DescribeBinary(head);
        if (extension == ".pdf")
        {
            return head.StartsWith(PdfMagic)
                ? DocumentDetection.Accept(DocumentKind.Pdf)
                : DocumentDetection.Reject($"The file is named .pdf but its content is {binary ?? DescribeText(head)}, not a PDF.");
        }

        if (extension == ".docx")
        {
            return head.StartsWith(ZipMagic)
                ? DocumentDetection.Accept(DocumentKind.Docx)
                : DocumentDetection.Reject($"The file is named .docx but its content is {binary ?? DescribeText(head)}, not a Word document.");
        }

        if (binary is not null)
        {
            return DocumentDetection.Reject(extension.Length == 0
                ? $"The file's content is {binary}, which is not supported."
                : $"The file is named {extension} but its content is {binary}, which is not supported.");
        }

        DocumentKind kind;
        if (TextExtensions.TryGetValue(extension, out var textKind)) kind = textKind;
        else if (CodeExtensions.Contains(extension)) kind = DocumentKind.SourceCode;
        else if (extension.Length == 0) kind = LooksLikeHtml(head) ? DocumentKind.Html : DocumentKind.Text;
        else return DocumentDetection.Reject($"Files of type {extension} are not supported.");

        if (head.Contains((byte)0)) return DocumentDetection.Reject($"The file is named {DisplayType(extension)} but contains binary data (NUL bytes), not text.");
        if (!IsUtf8(head)) return DocumentDetection.Reject($"The file is named {DisplayType(extension)} but is not valid UTF-8 text.");
        return DocumentDetection.Accept(kind);
    }

    private static string DisplayType(string extension) => extension.Length == 0 ? "without an extension" : extension;

    /// <summary>A description of well-known non-text content, or null when the bytes do not match a known signature.</summary>
    private static string? DescribeBinary(ReadOnlySpan<byte> head)
    {
        if (head.StartsWith(PdfMagic)) return "a PDF";
        if (head.StartsWith(ZipMagic) || head.StartsWith("PK\x05\x06"u8)) return "a ZIP archive";
        if (head.StartsWith(Magic1)) return "a PNG image";
        if (head.StartsWith(Magic2)) return "a JPEG image";
        if (head.StartsWith("GIF8"u8)) return "a GIF image";
        if (head.StartsWith("MZ"u8)) return "a Windows executable";
        if (head.StartsWith(Magic3)) return "an ELF executable";
        if (head.StartsWith(Magic4)) return "a gzip archive";
        if (head.StartsWith(Magic5)) return "a legacy Office document";
        if (head.StartsWith("Rar!"u8)) return "a RAR archive";
        if (head.StartsWith(Magic6)) return "a 7-Zip archive";
        return null;
    }

    private static string DescribeText(ReadOnlySpan<byte> head)
    {
        if (head.Contains((byte)0) || !IsUtf8(head)) return "binary data";
        return LooksLikeHtml(head) ? "HTML" : "text";
    }

    private static bool LooksLikeHtml(ReadOnlySpan<byte> head)
    {
        if (head.StartsWith(Utf8Bom)) head = head[3..];
        head = head.TrimStart(" \t\r\n"u8);
        return StartsWithIgnoreCase(head, "<!doctype html"u8) || StartsWithIgnoreCase(head, "<html"u8);
    }

    private static bool StartsWithIgnoreCase(ReadOnlySpan<byte> value, ReadOnlySpan<byte> asciiPrefix)
    {
        if (value.Length < asciiPrefix.Length) return false;
        for (var i = 0; i < asciiPrefix.Length; i++)
        {
            var b = value[i];
            if (b is >= (byte)'A' and <= (byte)'Z') b += 32;
            if (b != asciiPrefix[i]) return false;
        }

        return true;
    }

    /// <summary>Valid UTF-8, tolerating a BOM and a multi-byte sequence cut off by the end of the head.</summary>
    private static bool IsUtf8(ReadOnlySpan<byte> head)
    {
        if (head.StartsWith(Utf8Bom)) head = head[3..];
        while (!head.IsEmpty)
        {
            var status = Rune.DecodeFromUtf8(head, out _, out var consumed);
            if (status == OperationStatus.NeedMoreData) return head.Length < 4;
            if (status != OperationStatus.Done) return false;
            head = head[consumed..];
        }

        return true;
    }
}

using System.Text;
using Sutazai.Knowledge.Extraction;

namespace Sutazai.Server.Tests.Knowledge.Extraction;

public class DocumentTypeDetectorTests
{
    [Theory]
    [InlineData("notes.txt", "hello", DocumentKind.Text)]
    [InlineData("README.md", "# Title", DocumentKind.Markdown)]
    [InlineData("page.htm", "<p>hi</p>", DocumentKind.Html)]
    [InlineData("page", "  <!DOCTYPE html><html></html>", DocumentKind.Html)]
    [InlineData("Makefile", "all:\n\techo hi", DocumentKind.Text)]
    [InlineData("data.csv", "a,b\n1,2", DocumentKind.Csv)]
    [InlineData("data.json", "{\"a\":1}", DocumentKind.Json)]
    [InlineData("main.rs", "fn main() {}", DocumentKind.SourceCode)]
    [InlineData("C:\\Users\\me\\app.PY", "print('hi')", DocumentKind.SourceCode)]
    [InlineData("report.pdf", "%PDF-1.7\n%binary", DocumentKind.Pdf)]
    public void Accepts(string fileName, string content, DocumentKind expected)
    {
        var detection = DocumentTypeDetector.Detect(fileName, Encoding.UTF8.GetBytes(content));

        Assert.True(detection.IsAccepted);
        Assert.Equal(expected, detection.Kind);
        Assert.Null(detection.RejectionReason);
    }

    [Fact]
    public void Accepts_docx_with_a_zip_header_and_utf8_with_a_bom()
    {
        Assert.Equal(DocumentKind.Docx, DocumentTypeDetector.Detect("a.docx", Fixtures.Docx()).Kind);
        Assert.Equal(DocumentKind.Text, DocumentTypeDetector.Detect("a.txt", [0xEF, 0xBB, 0xBF, .. "héllo"u8]).Kind);
    }

    [Fact]
    public void Accepts_a_multibyte_character_cut_off_by_the_end_of_the_head()
    {
        var head = new byte[DocumentTypeDetector.HeadLength + 10];
        head.AsSpan().Fill((byte)'a');
        head[DocumentTypeDetector.HeadLength - 1] = 0xC3;
        head[DocumentTypeDetector.HeadLength] = 0xA9;

        Assert.Equal(DocumentKind.Text, DocumentTypeDetector.Detect("a.txt", head).Kind);
    }

    [Theory]
    [InlineData("report.pdf", "<!DOCTYPE html><html><body>hi</body></html>", "The file is named .pdf but its content is HTML, not a PDF.")]
    [InlineData("report.pdf", "just words", "The file is named .pdf but its content is text, not a PDF.")]
    [InlineData("letter.docx", "hello", "The file is named .docx but its content is text, not a Word document.")]
    [InlineData("setup.exe", "MZ\u0090\u0000", "The file is named .exe but its content is a Windows executable, which is not supported.")]
    [InlineData("program", "MZ\u0090\u0000", "The file's content is a Windows executable, which is not supported.")]
    [InlineData("notes.txt", "hello\u0000world", "The file is named .txt but contains binary data (NUL bytes), not text.")]
    [InlineData("empty.txt", "", "The file is empty.")]
    [InlineData("thing.xyz", "text", "Files of type .xyz are not supported.")]
    [InlineData("paper.pdf.txt", "%PDF-1.4", "The file is named .txt but its content is a PDF, which is not supported.")]
    public void Rejects(string fileName, string content, string reason)
    {
        var detection = DocumentTypeDetector.Detect(fileName, Encoding.UTF8.GetBytes(content));

        Assert.False(detection.IsAccepted);
        Assert.Null(detection.Kind);
        Assert.Equal(reason, detection.RejectionReason);
    }

    [Fact]
    public void Rejects_binary_signatures_and_invalid_utf8()
    {
        byte[] png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];
        Assert.Equal("The file is named .txt but its content is a PNG image, which is not supported.",
            DocumentTypeDetector.Detect("photo.txt", png).RejectionReason);
        Assert.Equal("The file is named .zip but its content is a ZIP archive, which is not supported.",
            DocumentTypeDetector.Detect("archive.zip", Fixtures.Docx()).RejectionReason);
        Assert.Equal("The file is named .txt but is not valid UTF-8 text.",
            DocumentTypeDetector.Detect("latin1.txt", [(byte)'c', 0xE9, (byte)'t', (byte)'e']).RejectionReason);
        Assert.Equal("The file is named .pdf but its content is binary data, not a PDF.",
            DocumentTypeDetector.Detect("x.pdf", [0x00, 0x01, 0x02]).RejectionReason);
    }

    [Theory]
    [InlineData("../../etc/passwd", "passwd")]
    [InlineData("C:\\Users\\me\\report.pdf", "report.pdf")]
    [InlineData("a\u0000b\u202Ec\u0007.txt", "abc.txt")]
    [InlineData("  my \t  file .txt  ", "my file .txt")]
    [InlineData("   ", "document")]
    [InlineData("..", "document")]
    [InlineData("dir/", "document")]
    public void Sanitizes_display_names(string input, string expected) =>
        Assert.Equal(expected, FileNames.Sanitize(input));

    [Fact]
    public void Sanitize_shortens_long_names_and_keeps_the_extension()
    {
        var name = FileNames.Sanitize(new string('a', 300) + ".pdf");

        Assert.Equal(FileNames.MaxLength, name.Length);
        Assert.Equal(new string('a', FileNames.MaxLength - 4) + ".pdf", name);
    }
}

using System.Text;
using Sutazai.Knowledge.Extraction;

namespace Sutazai.Server.Tests.Knowledge.Extraction;

public class DocumentExtractorTests
{
    private static Task<ExtractedDocument> Extract(byte[] bytes, DocumentKind kind, string? fileName = null, ExtractionOptions? options = null) =>
        new DocumentExtractor(options).ExtractAsync(new MemoryStream(bytes), kind, fileName, CancellationToken.None);

    private static Task<ExtractedDocument> Extract(string text, DocumentKind kind, string? fileName = null, ExtractionOptions? options = null) =>
        Extract(Encoding.UTF8.GetBytes(text), kind, fileName, options);

    [Fact]
    public async Task Plain_text_normalizes_line_endings_and_is_titled_by_the_file_name()
    {
        var document = await Extract([0xEF, 0xBB, 0xBF, .. "Hello\r\nWorld\r\n\r\n"u8], DocumentKind.Text, "dir/notes.txt");

        Assert.Equal("notes.txt", document.Title);
        Assert.Equal([new ExtractedSection("Hello\nWorld")], document.Sections);
    }

    [Fact]
    public async Task Source_code_is_text_titled_by_the_file_name()
    {
        IDocumentExtractor extractor = new DocumentExtractor();
        var untitled = await extractor.ExtractAsync(new MemoryStream("x = 1"u8.ToArray()), DocumentKind.SourceCode, CancellationToken.None);
        var document = await Extract("def main():\n    print('hi')\n", DocumentKind.SourceCode, "main.py");

        Assert.Null(untitled.Title);
        Assert.Equal("main.py", document.Title);
        Assert.Equal([new ExtractedSection("def main():\n    print('hi')")], document.Sections);
    }

    [Fact]
    public async Task Markdown_headings_form_the_heading_path_and_code_blocks_stay_text()
    {
        const string markdown = """
            Preamble.

            # Guide
            Intro text.

            ## Install
            Run it.

            ### Linux ###
            ```bash
            # not a heading
            apt install x
            ```

            ## Usage
            Use it.
            """;

        var document = await Extract(markdown, DocumentKind.Markdown, "guide.md");

        Assert.Equal("Guide", document.Title);
        Assert.Equal(
        [
            new ExtractedSection("Preamble."),
            new ExtractedSection("Intro text.", "Guide"),
            new ExtractedSection("Run it.", "Guide > Install"),
            new ExtractedSection("```bash\n# not a heading\napt install x\n```", "Guide > Install > Linux"),
            new ExtractedSection("Use it.", "Guide > Usage"),
        ], document.Sections);
    }

    [Fact]
    public async Task Html_drops_scripts_styles_and_navigation_and_keeps_headings()
    {
        const string html = """
            <!DOCTYPE html>
            <html><head><title> My
              Page </title><style>body { color: red }</style><script>var x = 1;</script></head>
            <body>
              <nav><a href="/">Home</a> <a href="/about">About</a></nav>
              <h1>Welcome</h1>
              <p>Hello   <b>bold</b>
                 world.</p>
              <script>alert('x')</script>
              <h2>Details</h2>
              <ul><li>One</li><li>Two</li></ul>
              <table><tr><th>A</th><th>B</th></tr><tr><td>1</td><td>2</td></tr></table>
              <pre>  keep
                spacing</pre>
              <footer>Copyright 2026</footer>
            </body></html>
            """;

        var document = await Extract(html, DocumentKind.Html, "page.html");

        Assert.Equal("My Page", document.Title);
        Assert.Equal(
        [
            new ExtractedSection("Hello bold world.", "Welcome"),
            new ExtractedSection("- One\n\n- Two\n\nA\tB\n\n1\t2\n\n  keep\n    spacing", "Welcome > Details"),
        ], document.Sections);
    }

    [Fact]
    public async Task Html_articles_are_read_with_readability()
    {
        const string sentence = "Self-hosted assistants keep every document on hardware the owner controls, so nothing leaves the building. ";
        var html = $"""
            <html><head><title>Local AI</title><script>track();</script></head><body>
            <nav><ul><li><a href="/">Home</a></li><li><a href="/blog">Blog</a></li></ul></nav>
            <div class="sidebar"><a href="/ads">Buy now</a></div>
            <article>
              <h1>Local AI</h1>
              <p>{string.Concat(Enumerable.Repeat(sentence, 4))}</p>
              <h2>Privacy</h2>
              <p>{string.Concat(Enumerable.Repeat(sentence, 3))}</p>
            </article>
            <footer>Copyright 2026 Example</footer>
            </body></html>
            """;

        var document = await Extract(html, DocumentKind.Html);

        // The sidebar is gone (readability, not the fallback), and readability drops the H1 that repeats the title.
        Assert.Equal("Local AI", document.Title);
        Assert.Equal(
        [
            new ExtractedSection(string.Concat(Enumerable.Repeat(sentence, 4)).Trim()),
            new ExtractedSection(string.Concat(Enumerable.Repeat(sentence, 3)).Trim(), "Privacy"),
        ], document.Sections);
    }

    [Fact]
    public async Task Pdf_has_one_section_per_page_with_1_based_page_numbers()
    {
        var document = await Extract(Fixtures.Pdf(), DocumentKind.Pdf, "deck.pdf");

        Assert.Equal("Test Deck", document.Title);
        Assert.Equal(
        [
            new ExtractedSection("Hello PDF world.\nSecond line here", null, 1),
            new ExtractedSection("Page two text", null, 2),
        ], document.Sections);
    }

    [Fact]
    public async Task Docx_headings_paragraphs_and_tables()
    {
        var document = await Extract(Fixtures.Docx(), DocumentKind.Docx, "report.docx");

        Assert.Equal("Quarterly Report", document.Title);
        Assert.Equal(
        [
            new ExtractedSection("First paragraph.\n\nSecond paragraph.", "Overview"),
            new ExtractedSection("Name\tQty\nApples\t3\n\nAfter table.", "Overview > Details"),
        ], document.Sections);
    }

    [Fact]
    public async Task Csv_rows_become_column_value_lines()
    {
        const string csv = "name,age,city\r\nAlice,30,\"Paris, FR\"\r\nBob,,\"He said \"\"hi\"\"\",extra\r\n";

        var document = await Extract(csv, DocumentKind.Csv, "people.csv");

        Assert.Equal("people.csv", document.Title);
        var section = Assert.Single(document.Sections);
        Assert.Equal(
            "Columns: name, age, city\n\nname: Alice\nage: 30\ncity: Paris, FR\n\nname: Bob\nage: \ncity: He said \"hi\"\ncolumn 4: extra",
            section.Text);
    }

    [Fact]
    public async Task Json_is_flattened_to_path_value_lines()
    {
        const string json = """
            {
              "name": "Sutazai", "version": 2.50, "tags": ["ai", "local"],
              "owner": { "id": 1, "active": true, "nick": null },
              "empty": {}, "list": [], "odd key": "x", // comment
            }
            """;

        var document = await Extract(json, DocumentKind.Json);

        var section = Assert.Single(document.Sections);
        Assert.Equal(
            "name: Sutazai\nversion: 2.50\ntags[0]: ai\ntags[1]: local\nowner.id: 1\nowner.active: true\nowner.nick: null\n" +
            "empty: {}\nlist: []\n[\"odd key\"]: x",
            section.Text);
        Assert.Equal("[0].a: 1\n[1]: 42", Assert.Single((await Extract("[{\"a\":1},42]", DocumentKind.Json)).Sections).Text);
    }

    [Theory]
    [InlineData(DocumentKind.Pdf, "%PDF-1.7\nthis is not a pdf", "The PDF could not be read: ")]
    [InlineData(DocumentKind.Docx, "PK\u0003\u0004not really a zip", "The Word document could not be read: ")]
    [InlineData(DocumentKind.Json, "{\"a\": ", "The file is not valid JSON: ")]
    public async Task Malformed_documents_fail_with_a_reason(DocumentKind kind, string content, string messageStart)
    {
        var ex = await Assert.ThrowsAsync<DocumentExtractionException>(() => Extract(content, kind));

        Assert.Equal(DocumentExtractionError.Malformed, ex.Error);
        Assert.StartsWith(messageStart, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Invalid_utf8_text_fails()
    {
        var ex = await Assert.ThrowsAsync<DocumentExtractionException>(() => Extract([(byte)'c', 0xE9, (byte)'t'], DocumentKind.Text));

        Assert.Equal(DocumentExtractionError.Malformed, ex.Error);
        Assert.Equal("The file is not valid UTF-8 text.", ex.Message);
    }

    [Theory]
    [InlineData(DocumentKind.Text)]
    [InlineData(DocumentKind.Pdf)]
    [InlineData(DocumentKind.Docx)]
    public async Task Text_longer_than_the_limit_fails(DocumentKind kind)
    {
        var bytes = kind switch
        {
            DocumentKind.Pdf => Fixtures.Pdf(),
            DocumentKind.Docx => Fixtures.Docx(),
            _ => Encoding.UTF8.GetBytes("0123456789AB"),
        };

        var ex = await Assert.ThrowsAsync<DocumentExtractionException>(() => Extract(bytes, kind, options: new ExtractionOptions { MaxCharacters = 10 }));

        Assert.Equal(DocumentExtractionError.TooLarge, ex.Error);
        Assert.Equal("The document's text is longer than the limit of 10 characters.", ex.Message);
    }

    [Fact]
    public async Task Input_larger_than_the_byte_limit_fails()
    {
        var ex = await Assert.ThrowsAsync<DocumentExtractionException>(() =>
            Extract(Fixtures.Pdf(), DocumentKind.Pdf, options: new ExtractionOptions { MaxInputBytes = 100 }));

        Assert.Equal(DocumentExtractionError.TooLarge, ex.Error);
        Assert.Equal("The file is larger than the limit of 100 bytes.", ex.Message);
    }
}

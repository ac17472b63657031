using System.ComponentModel;
using System.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using Sutazai.Knowledge.Extraction;
using Sutazai.Knowledge.Web;

namespace Sutazai.Agents.Tools;

public sealed record WebFetchResult(string Url, string? ContentType, string? Title, string Text, int TotalChars, bool Truncated);

/// <summary>
/// web_fetch: downloads a page through <see cref="GuardedFetch"/> (the SSRF guard and allowlist URL ingestion uses) and
/// returns its readable text, extracted by the same readers document ingestion uses (HTML readability, PDF, …).
/// </summary>
public sealed class WebToolProvider(SsrfGuard guard, IOptions<AgentToolOptions> options) : IToolProvider
{
    public const string UserAgent = "SutazAI/1.0 (+agent web_fetch)";

    private readonly AgentToolOptions _options = options.Value;

    public string Name => "web";

    public string Description => "Fetches a public web page or file and returns its readable text (private and loopback addresses are refused).";

    public (bool Available, string? Reason) Health() => (true, null);

    public IReadOnlyList<AgentTool> Create(ToolContext context) =>
    [
        new(AIFunctionFactory.Create(
            ([Description("An absolute http(s) URL.")] string url,
             [Description("Most characters of text to return.")] int? maxChars = null,
             CancellationToken cancellationToken = default) => FetchAsync(url, maxChars, cancellationToken),
            "web_fetch",
            "Downloads a web page (HTML, PDF, text, Markdown, JSON, CSV) and returns its title and readable text. " +
            $"Returns {_options.WebFetchDefaultChars} characters unless maxChars says otherwise (at most {_options.WebFetchMaxChars})."),
            SideEffects: false, _ => ToolRisk.Low),
    ];

    private async Task<WebFetchResult> FetchAsync(string url, int? maxChars, CancellationToken ct)
    {
        var limit = maxChars ?? _options.WebFetchDefaultChars;
        if (limit < 1 || limit > _options.WebFetchMaxChars) throw new ToolException($"maxChars must be between 1 and {_options.WebFetchMaxChars}.");
        if (!GuardedFetch.TryParseUrl(url, out var uri)) throw new ToolException("Give an absolute http(s) URL without credentials.");

        FetchedContent fetched;
        try
        {
            fetched = await GuardedFetch.GetAsync(guard, uri, _options.WebFetchMaxBytes, TimeSpan.FromSeconds(_options.WebFetchTimeoutSeconds), UserAgent, ct);
        }
        catch (FetchException ex)
        {
            throw new ToolException(ex.Message);
        }

        var name = GuardedFetch.NameFor(fetched.Url, fetched.ContentType);
        var content = fetched.Content;
        var detection = DocumentTypeDetector.Detect(name, content.AsSpan(0, Math.Min(content.Length, DocumentTypeDetector.HeadLength)));
        if (!detection.IsAccepted) throw new ToolException($"{fetched.Url}: {detection.RejectionReason}");
        ExtractedDocument document;
        try
        {
            document = await new DocumentExtractor().ExtractAsync(new MemoryStream(content), detection.Kind!.Value, name, ct);
        }
        catch (DocumentExtractionException ex)
        {
            throw new ToolException($"{fetched.Url}: {ex.Message}");
        }

        var text = new StringBuilder();
        string? lastHeading = null;
        foreach (var section in document.Sections)
        {
            if (text.Length > 0) text.Append("\n\n");
            if (section.Heading is { } heading && heading != lastHeading) text.Append("## ").Append(heading).Append("\n\n");
            lastHeading = section.Heading;
            text.Append(section.Text);
        }
        var full = text.ToString();
        return new WebFetchResult(fetched.Url.ToString(), fetched.ContentType, document.Title, TextCaps.Truncate(full, limit), full.Length, full.Length > limit);
    }
}

using Ganss.Xss;
using Markdig;

namespace Sutazai.Server.Ui;

/// <summary>
/// Renders user and model text as Markdown for display: raw HTML in the source is shown as text (Markdig's DisableHtml),
/// and the result is sanitised (only http, https and mailto links; no scripts, handlers, styles or data: URLs). Code
/// blocks get a copy button whose click is handled by one delegated listener in app.js (no inline script).
/// </summary>
public static class Markdown
{
    private static readonly MarkdownPipeline Pipeline = new MarkdownPipelineBuilder()
        .UseEmphasisExtras().UsePipeTables().UseAutoLinks().UseTaskLists().UseListExtras()
        .DisableHtml()
        .Build();

    private static readonly HtmlSanitizer Sanitizer = CreateSanitizer();

    private static HtmlSanitizer CreateSanitizer()
    {
        var sanitizer = new HtmlSanitizer();
        sanitizer.AllowedSchemes.Clear();
        sanitizer.AllowedSchemes.Add("http");
        sanitizer.AllowedSchemes.Add("https");
        sanitizer.AllowedSchemes.Add("mailto");
        sanitizer.AllowedAttributes.Remove("style");
        sanitizer.AllowedTags.Remove("img");
        sanitizer.AllowedTags.Remove("form");
        sanitizer.AllowedTags.Remove("input");
        sanitizer.AllowedTags.Remove("button");
        sanitizer.AllowedCssProperties.Clear();
        sanitizer.PostProcessNode += (_, e) =>
        {
            if (e.Node is AngleSharp.Html.Dom.IHtmlAnchorElement anchor)
            {
                anchor.SetAttribute("rel", "noopener noreferrer nofollow");
                anchor.SetAttribute("target", "_blank");
            }
        };
        return sanitizer;
    }

    public static string ToHtml(string? markdown)
    {
        if (string.IsNullOrEmpty(markdown)) return "";
        var html = Sanitizer.Sanitize(Markdig.Markdown.ToHtml(markdown, Pipeline));
        return html.Replace("<pre>", "<div class=\"code-block\"><button type=\"button\" class=\"copy-code\" aria-label=\"Copy code\">Copy</button><pre>", StringComparison.Ordinal)
            .Replace("</pre>", "</pre></div>", StringComparison.Ordinal);
    }
}

using System.Net;
using System.Text.RegularExpressions;
using ColorCode;
using Ganss.Xss;
using Markdig;

namespace Sutazai.Server.Ui;

/// <summary>
/// Renders user and model text as Markdown for display: raw HTML in the source is shown as text (Markdig's DisableHtml),
/// and the result is sanitised (only http, https and mailto links; no scripts, handlers, styles or data: URLs). Code
/// blocks get a copy button whose click is handled by one delegated listener in app.js (no inline script), and
/// fenced blocks in a language ColorCode knows are highlighted on the server (class names only; colours in app.css).
/// </summary>
public static partial class Markdown
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
        // Class names come only from our own rendering (raw HTML in the source is disabled): the highlighter's spans
        // and the code block's language.
        sanitizer.AllowedAttributes.Add("class");
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

    [GeneratedRegex("<pre><code class=\"language-([A-Za-z0-9_+#-]{1,32})\">(.*?)</code></pre>", RegexOptions.Singleline)]
    private static partial Regex FencedCode();

    [GeneratedRegex("<pre>(.*)</pre>", RegexOptions.Singleline)]
    private static partial Regex PreContent();

    /// <summary>
    /// Replaces the escaped text of a fenced block with ColorCode's highlighted HTML: ColorCode escapes the code itself
    /// and adds only spans with class names, and the sanitiser still runs over the result.
    /// </summary>
    private static string Highlight(string html) => FencedCode().Replace(html, match =>
    {
        var language = Languages.FindById(match.Groups[1].Value.ToLowerInvariant() switch
        {
            "cs" or "c#" => "c#",
            "js" => "javascript",
            "ts" => "typescript",
            "py" => "python",
            var id => id,
        });
        if (language is null) return match.Value;
        var code = WebUtility.HtmlDecode(match.Groups[2].Value);
        var highlighted = PreContent().Match(new HtmlClassFormatter().GetHtmlString(code, language));
        return highlighted.Success
            ? $"<pre><code class=\"language-{match.Groups[1].Value}\">{highlighted.Groups[1].Value.TrimStart('\n')}</code></pre>"
            : match.Value;
    });

    public static string ToHtml(string? markdown)
    {
        if (string.IsNullOrEmpty(markdown)) return "";
        var html = Sanitizer.Sanitize(Highlight(Markdig.Markdown.ToHtml(markdown, Pipeline)));
        return html.Replace("<pre>", "<div class=\"code-block\"><button type=\"button\" class=\"copy-code\" aria-label=\"Copy code\">Copy</button><pre>", StringComparison.Ordinal)
            .Replace("</pre>", "</pre></div>", StringComparison.Ordinal);
    }
}

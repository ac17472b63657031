using Sutazai.Server.Ui;

namespace Sutazai.Server.Tests.Ui;

public sealed class MarkdownTests
{
    [Fact]
    public void FencedCode_InAKnownLanguage_IsHighlighted_AndStaysEscaped()
    {
        var html = Markdown.ToHtml("```csharp\nvar s = \"<script>alert(1)</script>\"; // hi\n```");
        Assert.Contains("<span class=\"keyword\">var</span>", html, StringComparison.Ordinal);
        Assert.Contains("<span class=\"comment\">// hi</span>", html, StringComparison.Ordinal);
        Assert.Contains("&lt;script&gt;alert(1)&lt;/script&gt;", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", html, StringComparison.Ordinal);
        Assert.Contains("class=\"copy-code\"", html, StringComparison.Ordinal);
    }

    [Fact]
    public void FencedCode_InAnUnknownLanguage_IsPlainEscapedText()
    {
        var html = Markdown.ToHtml("```nosuchlang\n<b>x</b>\n```");
        Assert.Contains("&lt;b&gt;x&lt;/b&gt;", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<span", html, StringComparison.Ordinal);
    }

    [Fact]
    public void RawHtmlAndScriptLinks_AreNeutralised()
    {
        var html = Markdown.ToHtml("<img src=x onerror=alert(1)> [a](javascript:alert(1)) [b](https://example.com)");
        Assert.DoesNotContain("<img", html, StringComparison.Ordinal);
        Assert.DoesNotContain("javascript:", html, StringComparison.Ordinal);
        Assert.Contains("href=\"https://example.com\"", html, StringComparison.Ordinal);
    }
}

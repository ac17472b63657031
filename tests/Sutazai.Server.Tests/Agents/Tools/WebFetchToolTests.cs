using Sutazai.Knowledge.Web;
using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Agents.Tools;
using Sutazai.Server.Knowledge;
using static Sutazai.Server.Tests.Agents.Tools.ToolHarness;

namespace Sutazai.Server.Tests.Agents.Tools;

/// <summary>web_fetch through the SSRF guard, against a real web server on loopback that counts what reaches it.</summary>
public sealed class WebFetchToolTests : IAsyncLifetime
{
    private const string Page = "<html><head><title>Geysers</title></head><body><nav>menu</nav><h1>Geysers</h1><p>Old Faithful erupts about every ninety minutes in Yellowstone.</p></body></html>";

    private WebApplication _site = null!;
    private int _port;
    private int _pageHits;
    private int _redirectHits;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        _site = builder.Build();
        _site.MapGet("/page.html", () =>
        {
            Interlocked.Increment(ref _pageHits);
            return Results.Content(Page, "text/html");
        });
        _site.MapGet("/notes.txt", () => Results.Text("plain notes", "text/plain"));
        _site.MapGet("/redirect", (HttpContext c) =>
        {
            Interlocked.Increment(ref _redirectHits);
            return Results.Redirect($"http://127.0.0.1:{c.Connection.LocalPort}/page.html");
        });
        _site.MapGet("/missing", () => Results.NotFound());
        await _site.StartAsync();
        _port = new Uri(_site.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
    }

    public async Task DisposeAsync() => await _site.DisposeAsync();

    private static AgentTool Fetch(params string[] allowlist) =>
        Tool(new WebToolProvider(new SsrfGuard(allowlist), Wrap(Options())), Context("/tmp"), "web_fetch");

    private string Url(string host, string path) => $"http://{host}:{_port.ToString(CultureInfo.InvariantCulture)}{path}";

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("[::ffff:127.0.0.1]")]
    [InlineData("localhost")]
    public async Task LoopbackTargets_AreRefused_AndNeverContacted(string host)
    {
        var error = await FailsAsync(Fetch(), new { url = Url(host, "/page.html") });
        Assert.Contains("loopback, private, link-local or reserved address", error.Message);
        Assert.Equal(0, _pageHits);
    }

    [Theory]
    [InlineData("http://169.254.169.254/latest/meta-data/", "169.254.169.254")]
    [InlineData("http://10.1.2.3/", "10.1.2.3")]
    [InlineData("http://[::1]:9/", "::1")]
    public async Task PrivateTargets_AreRefused(string url, string address)
    {
        var error = await FailsAsync(Fetch(), new { url });
        Assert.Contains($"resolves to {address}", error.Message);
    }

    [Theory]
    [InlineData("file:///etc/passwd")]
    [InlineData("ftp://example.com/x.txt")]
    [InlineData("http://user:secret@example.com/")]
    [InlineData("not a url")]
    public async Task NonHttpUrls_AreRefused(string url) =>
        Assert.Equal("Give an absolute http(s) URL without credentials.", (await FailsAsync(Fetch(), new { url })).Message);

    [Fact]
    public async Task AllowlistedHost_ReturnsReadableText()
    {
        var result = await InvokeAsync<WebFetchResult>(Fetch("127.0.0.1"), new { url = Url("127.0.0.1", "/page.html") });
        Assert.Equal(Url("127.0.0.1", "/page.html"), result.Url);
        Assert.Equal("Geysers", result.Title);
        Assert.Equal("text/html", result.ContentType);
        Assert.Contains("Old Faithful erupts about every ninety minutes in Yellowstone.", result.Text);
        Assert.DoesNotContain("menu", result.Text);
        Assert.False(result.Truncated);
        Assert.Equal(result.Text.Length, result.TotalChars);
        Assert.Equal(1, _pageHits);
        Assert.Equal("plain notes", (await InvokeAsync<WebFetchResult>(Fetch("127.0.0.1"), new { url = Url("127.0.0.1", "/notes.txt") })).Text);
    }

    [Fact]
    public async Task MaxChars_TruncatesTheText()
    {
        var result = await InvokeAsync<WebFetchResult>(Fetch("127.0.0.1"), new { url = Url("127.0.0.1", "/page.html"), maxChars = 10 });
        Assert.Equal(10, result.Text.Length);
        Assert.True(result.Truncated);
        Assert.True(result.TotalChars > 10);
        Assert.Equal("maxChars must be between 1 and 200000.", (await FailsAsync(Fetch("127.0.0.1"), new { url = Url("127.0.0.1", "/page.html"), maxChars = 0 })).Message);
    }

    [Fact]
    public async Task RedirectToABlockedAddress_IsRefused_AndTheTargetNeverContacted()
    {
        var error = await FailsAsync(Fetch("localhost"), new { url = Url("localhost", "/redirect") });
        Assert.Contains("127.0.0.1", error.Message);
        Assert.Equal(1, _redirectHits);
        Assert.Equal(0, _pageHits);
    }

    [Fact]
    public async Task HttpErrors_AreReported()
    {
        var error = await FailsAsync(Fetch("127.0.0.1"), new { url = Url("127.0.0.1", "/missing") });
        Assert.Equal($"{Url("127.0.0.1", "/missing")} answered HTTP 404.", error.Message);
    }

    [Fact]
    public void Tool_IsSideEffectFreeAndLowRisk()
    {
        var tool = Fetch();
        Assert.False(tool.SideEffects);
        Assert.Equal(ToolRisk.Low, tool.AssessRisk(Arguments(new { url = "https://example.com" })));
    }
}

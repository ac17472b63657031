using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Knowledge;

/// <summary>URL ingestion through the SSRF guard, against a real web server on loopback.</summary>
public sealed class UrlIngestionTests
{
    private const string Page = "<html><head><title>Geysers</title></head><body><nav>menu</nav><h1>Geysers</h1><p>Old Faithful erupts about every ninety minutes in Yellowstone.</p></body></html>";

    private static async Task<(WebApplication Server, int Port)> StartSiteAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var site = builder.Build();
        site.MapGet("/page.html", () => Results.Content(Page, "text/html"));
        site.MapGet("/redirect", (HttpContext c) => Results.Redirect($"http://127.0.0.1:{c.Connection.LocalPort}/page.html"));
        await site.StartAsync();
        var port = new Uri(site.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
        return (site, port);
    }

    private static async Task<(TestApp App, HttpClient Client)> AppAsync(string allowlist)
    {
        var app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?>
        {
            ["Sutazai:Knowledge:UrlAllowlist"] = allowlist,
            ["Sutazai:Inference:Ollama:AutoDetect"] = "false",
        });
        using var anon = app.Client();
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        return (app, app.Client(tokens.AccessToken));
    }

    [Theory]
    [InlineData("http://127.0.0.1:{port}/page.html", "loopback")]
    [InlineData("http://[::ffff:127.0.0.1]:{port}/page.html", "loopback")]
    [InlineData("http://[::1]:{port}/page.html", "loopback")]
    [InlineData("http://169.254.169.254/latest/meta-data/", "link-local")]
    [InlineData("http://10.1.2.3/", "private")]
    public async Task PrivateAndLoopbackTargets_AreRefused(string template, string word)
    {
        var (site, port) = await StartSiteAsync();
        await using var _ = site;
        var (app, client) = await AppAsync("");
        await using var __ = app;
        var response = await client.PostAsJsonAsync("/api/v1/documents/url", new { url = template.Replace("{port}", port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal) });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var message = (await response.ReadJsonAsync()).GetProperty("errors").GetProperty("url")[0].GetString();
        Assert.Contains(word, message);
        Assert.Equal(0, (await (await client.GetAsync("/api/v1/documents")).ReadJsonAsync()).GetProperty("total").GetInt32());
    }

    [Theory]
    [InlineData("file:///etc/passwd")]
    [InlineData("ftp://example.com/x.txt")]
    [InlineData("http://user:secret@example.com/")]
    [InlineData("not a url")]
    public async Task BadUrls_Get422(string url)
    {
        var (app, client) = await AppAsync("");
        await using var _ = app;
        var response = await client.PostAsJsonAsync("/api/v1/documents/url", new { url });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
    }

    [Fact]
    public async Task AllowlistedHost_IsFetchedIndexedAndSearchable()
    {
        var (site, port) = await StartSiteAsync();
        await using var _ = site;
        var (app, client) = await AppAsync("127.0.0.1");
        await using var __ = app;
        var response = await client.PostAsJsonAsync("/api/v1/documents/url", new { url = $"http://127.0.0.1:{port}/page.html" });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var doc = (await response.ReadJsonAsync()).GetProperty("documents")[0];
        Assert.Equal($"http://127.0.0.1:{port}/page.html", doc.GetProperty("sourceUrl").GetString());
        Assert.Equal("Html", doc.GetProperty("kind").GetString());
        var id = doc.GetProperty("id").GetGuid();
        Assert.Equal("indexed", (await Documents.WaitIndexedAsync(client, id)).GetProperty("status").GetString());
        var hits = await (await client.GetAsync("/api/v1/search?q=how+often+does+Old+Faithful+erupt")).ReadJsonAsync();
        Assert.Equal(id, hits[0].GetProperty("documentId").GetGuid());
        Assert.DoesNotContain("menu", hits[0].GetProperty("text").GetString());
    }

    [Fact]
    public async Task RedirectToABlockedAddress_IsRefused()
    {
        var (site, port) = await StartSiteAsync();
        await using var _ = site;
        var (app, client) = await AppAsync("localhost");
        await using var __ = app;
        var response = await client.PostAsJsonAsync("/api/v1/documents/url", new { url = $"http://localhost:{port}/redirect" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Contains("127.0.0.1", (await response.ReadJsonAsync()).GetProperty("errors").GetProperty("url")[0].GetString());
    }
}

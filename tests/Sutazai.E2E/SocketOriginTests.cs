using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Playwright;

namespace Sutazai.E2E;

[Collection(BrowserCollection.Name)]
public sealed class SocketOriginTests(BrowserFixture fixture)
{
    /// <summary>
    /// Opens a WebSocket and reports every event: on a connection frame it asks for the JARVIS history (what a
    /// hijacking page would do next, before starting and approving shell runs), then closes.
    /// </summary>
    private const string Probe = """
        function probe(target) {
          return new Promise(resolve => {
            const events = [];
            const ws = new WebSocket(target);
            ws.onopen = () => events.push('open');
            ws.onerror = () => events.push('error');
            ws.onmessage = e => {
              const frame = JSON.parse(e.data);
              events.push(frame.type === 'connection' ? 'connection authenticated=' + frame.authenticated : frame.type);
              if (frame.type === 'connection') ws.send(JSON.stringify({ type: 'history' }));
              else ws.close(1000);
            };
            ws.onclose = e => { events.push('close ' + e.code); resolve(events.join(' | ')); };
          });
        }
        """;

    [Fact]
    public async Task APageOnAnotherLoopbackPort_CannotOpenJarvisWithTheSignedInUsersCookie()
    {
        var server = fixture.Server;
        var username = await server.RegisterAsync();
        var jarvis = $"ws://{server.BaseUrl.Authority}/ws/jarvis";
        await using var otherSite = await OtherSite.StartAsync($$"""
            <!doctype html>
            <html lang="en"><head><title>Another site</title></head>
            <body>
            <pre id="result">pending</pre>
            <script>
            {{Probe}}
            probe(new URLSearchParams(location.search).get('target')).then(report => {
              const result = document.getElementById('result');
              result.textContent = report;
              result.dataset.done = 'true';
            });
            </script>
            </body></html>
            """);
        await using var context = await fixture.Browser.NewContextAsync();
        var page = await context.NewPageAsync();
        await Ui.ShootOnFailureAsync(page, nameof(APageOnAnotherLoopbackPort_CannotOpenJarvisWithTheSignedInUsersCookie), async () =>
        {
            await Ui.SignInAsync(page, server.BaseUrl, username);
            await page.WaitForURLAsync(server.BaseUrl.ToString());

            // The server's own page opens the socket with the cookie: the credential itself is good.
            Assert.Equal("open | connection authenticated=true | history | close 1000", await page.EvaluateAsync<string>($"({Probe.Replace("function probe", "function", StringComparison.Ordinal)})", jarvis));

            // Same site (cookies ignore ports, so the browser sends the UI cookie along), another origin: refused.
            await page.GotoAsync($"{otherSite.BaseUrl}?target={Uri.EscapeDataString(jarvis)}");
            var result = page.Locator("#result[data-done=true]");
            await Assertions.Expect(result).ToHaveCountAsync(1, new() { Timeout = 20_000 });
            Assert.Equal("error | close 1006", await result.TextContentAsync());
            Assert.Equal(1, otherSite.PagesServed);
        });
    }

    /// <summary>A second web site on a free loopback port, serving one HTML page.</summary>
    private sealed class OtherSite : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private int _pagesServed;

        private OtherSite(WebApplication app) => _app = app;

        public int PagesServed => Volatile.Read(ref _pagesServed);

        public string BaseUrl => _app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First() + "/";

        public static async Task<OtherSite> StartAsync(string html)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Logging.ClearProviders();
            var app = builder.Build();
            var site = new OtherSite(app);
            app.MapGet("/", () =>
            {
                Interlocked.Increment(ref site._pagesServed);
                return Results.Content(html, "text/html; charset=utf-8", statusCode: (int)HttpStatusCode.OK);
            });
            await app.StartAsync();
            return site;
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}

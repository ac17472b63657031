using Microsoft.Playwright;

namespace Sutazai.E2E;

/// <summary>
/// The published output (<c>dotnet publish</c>) started the way a service unit, a container with another WORKDIR or a
/// shell in the data folder starts it: from a working directory that is not the app folder. Its web assets must still
/// be served (the content root follows the binary), so the page is styled, Blazor starts and the chat answers.
/// </summary>
[Collection(BrowserCollection.Name)]
public sealed class PublishedTests(BrowserFixture fixture)
{
    [Fact]
    public async Task PublishedOutput_StartedFromAForeignFolder_ServesAStyledUi_AndChats()
    {
        var published = await E2EServer.PublishedDirectory();
        // The data folder itself is the working directory: neither wwwroot nor the static web assets manifest is there.
        await using var server = await E2EServer.StartAsync(serverDirectory: published, workingDirectory: dataDir => dataDir);
        Assert.False(File.Exists(Path.Combine(server.DataDir, "sutazai.dll")));
        var user = await server.RegisterAsync();

        var context = await fixture.Browser.NewContextAsync();
        await using var _ = context;
        var page = await context.NewPageAsync();
        var assets = new List<IResponse>();
        page.Response += (_, response) =>
        {
            var path = new Uri(response.Url).AbsolutePath;
            if (path.EndsWith(".css", StringComparison.Ordinal) || path.EndsWith(".js", StringComparison.Ordinal))
                lock (assets) assets.Add(response);
        };

        await Ui.ShootOnFailureAsync(page, nameof(PublishedOutput_StartedFromAForeignFolder_ServesAStyledUi_AndChats), async () =>
        {
            await Ui.SignInAsync(page, server.BaseUrl, user);
            await page.WaitForURLAsync(server.BaseUrl.ToString());
            await Ui.WaitInteractiveAsync(page); // set by app.js once the Blazor circuit rendered: blazor.web.js ran

            // Every stylesheet and script came with its type and a body (the bug: 200, empty, no Content-Type).
            IResponse[] seen;
            lock (assets) seen = [.. assets];
            var paths = seen.Select(r => new Uri(r.Url).AbsolutePath).ToArray();
            Assert.Contains(paths, p => p.StartsWith("/_content/MudBlazor/MudBlazor.min.", StringComparison.Ordinal) && p.EndsWith(".css", StringComparison.Ordinal));
            Assert.Contains(paths, p => p.StartsWith("/app.", StringComparison.Ordinal) && p.EndsWith(".css", StringComparison.Ordinal));
            Assert.Contains(paths, p => p.StartsWith("/_framework/blazor.web.", StringComparison.Ordinal));
            foreach (var response in seen)
            {
                var expected = response.Url.EndsWith(".css", StringComparison.Ordinal) ? "^text/css" : "^text/javascript";
                Assert.Equal(200, response.Status);
                Assert.Matches(expected, response.Headers.GetValueOrDefault("content-type") ?? "");
                // The body again over plain HTTP (the browser's copy of a page navigated away from is gone).
                using var again = await server.Http.GetAsync(response.Url);
                Assert.Equal(System.Net.HttpStatusCode.OK, again.StatusCode);
                Assert.Matches(expected, again.Content.Headers.ContentType?.MediaType ?? "");
                Assert.NotEmpty(await again.Content.ReadAsByteArrayAsync());
            }

            // The styles apply: both linked stylesheets (MudBlazor's, the app's) parsed into rules, and MudBlazor's layout rule positions the app bar.
            var ruleCounts = await page.EvaluateAsync<int[]>("() => [...document.querySelectorAll('link[rel=stylesheet]')].map(l => l.sheet ? l.sheet.cssRules.length : -1)");
            Assert.Equal(2, ruleCounts.Length);
            Assert.All(ruleCounts, count => Assert.True(count > 10, $"a stylesheet has {count} rules"));
            Assert.Equal("fixed", await page.EvalOnSelectorAsync<string>(".mud-appbar", "e => getComputedStyle(e).position"));

            // And the chat works end to end.
            await page.FillAsync("#composer", "Hi there");
            await page.PressAsync("#composer", "Enter");
            var reply = page.Locator("article.message[data-role=assistant]").Last;
            await Assertions.Expect(reply).ToHaveAttributeAsync("data-status", "complete", new() { Timeout = 60_000 });
            await Assertions.Expect(reply.Locator(".content")).ToHaveTextAsync(E2EServer.ChatReply);
        });
    }
}

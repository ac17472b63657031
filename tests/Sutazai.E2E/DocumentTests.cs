using Microsoft.Playwright;

namespace Sutazai.E2E;

[Collection(BrowserCollection.Name)]
public sealed class DocumentTests(BrowserFixture fixture)
{
    private E2EServer Server => fixture.Server;

    [Fact]
    public async Task UploadedDocument_IsIndexed_AndChatCitesIt()
    {
        var username = await Server.RegisterAsync();
        await using var context = await fixture.Browser.NewContextAsync();
        var page = await context.NewPageAsync();
        var file = Path.Combine(Path.GetTempPath(), $"alpacas-{Guid.NewGuid():N}.md");
        await File.WriteAllTextAsync(file, "# Alpacas\n\nAlpacas eat grass and hay. They live in herds in the Andes and hum to each other.\n");
        try
        {
            await Ui.ShootOnFailureAsync(page, nameof(UploadedDocument_IsIndexed_AndChatCitesIt), async () =>
            {
                await Ui.SignInAsync(page, Server.BaseUrl, username);
                await page.WaitForURLAsync(Server.BaseUrl.ToString());
                await page.GotoAsync(new Uri(Server.BaseUrl, "/documents").ToString());
                await Ui.WaitInteractiveAsync(page);
                await page.FillAsync("#collection-name", "handbook");
                await page.ClickAsync("#create-collection");
                await Assertions.Expect(page.GetByTestId("collections")).ToContainTextAsync("#handbook");
                await Assertions.Expect(page.Locator("#upload-collection")).ToHaveValueAsync(new System.Text.RegularExpressions.Regex("^[0-9a-f-]{36}$"));

                await page.SetInputFilesAsync("#file-input", file);
                var row = page.Locator($"[data-testid=document][data-name='{Path.GetFileName(file)}']");
                await Assertions.Expect(row).ToHaveAttributeAsync("data-status", "indexed", new() { Timeout = 90_000 });
                await Assertions.Expect(row).ToContainTextAsync("handbook");

                await page.FillAsync("#search-query", "what do alpacas eat");
                await page.ClickAsync("#search-button");
                await Assertions.Expect(page.GetByTestId("search-results")).ToContainTextAsync("Alpacas eat grass and hay.");

                await page.GotoAsync(Server.BaseUrl.ToString());
                await Ui.WaitInteractiveAsync(page);
                await page.FillAsync("#composer", "#handbook What do alpacas eat?");
                await page.PressAsync("#composer", "Enter");
                var reply = page.Locator("article.message[data-role=assistant]").Last;
                await Assertions.Expect(reply).ToHaveAttributeAsync("data-status", "complete", new() { Timeout = 30_000 });
                var citation = reply.GetByTestId("citation").First;
                await Assertions.Expect(citation).ToContainTextAsync("[1]");
                await citation.ClickAsync();
                await Assertions.Expect(reply.GetByTestId("citation-passage")).ToContainTextAsync("Alpacas eat grass and hay.");
            });
        }
        finally
        {
            File.Delete(file);
        }
    }
}

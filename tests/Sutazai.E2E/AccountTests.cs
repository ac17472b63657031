using Microsoft.Playwright;
using Sutazai.Inference;
using Sutazai.Inference.Tests.Fakes;
using Sutazai.Server.Tests.Inference;

namespace Sutazai.E2E;

public sealed class FirstRunTests
{
    [Fact]
    public async Task FirstVisit_CreatesTheAdmin_ThenOffersToGetAModel()
    {
        await using var server = await E2EServer.StartAsync(withModels: false);
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await BrowserFixture.LaunchAsync(playwright);
        var page = await browser.NewPageAsync();
        await Ui.ShootOnFailureAsync(page, nameof(FirstVisit_CreatesTheAdmin_ThenOffersToGetAModel), async () =>
        {
            await page.GotoAsync(server.BaseUrl.ToString());
            await page.WaitForURLAsync("**/setup");
            await Assertions.Expect(page.GetByTestId("first-run")).ToBeVisibleAsync();
            await page.FillAsync("#username", "founder");
            await page.FillAsync("#email", "founder@example.com");
            await page.FillAsync("#password", E2EServer.Password);
            await page.ClickAsync("button[type=submit]");

            await page.WaitForURLAsync(server.BaseUrl.ToString());
            await Ui.WaitInteractiveAsync(page);
            await Assertions.Expect(page.GetByTestId("signed-in-as")).ToHaveTextAsync("founder");
            // No model: a set-up panel, never a dead chat box.
            await Assertions.Expect(page.GetByTestId("model-setup")).ToBeVisibleAsync();
            await Assertions.Expect(page.Locator("#pull-tinyllama")).ToBeVisibleAsync();
            await Assertions.Expect(page.Locator("#composer")).ToHaveCountAsync(0);
            await page.FillAsync("#ollama-url", "http://127.0.0.1:9");
            await page.ClickAsync("#connect-ollama");
            await Assertions.Expect(page.GetByTestId("ollama-result")).ToContainTextAsync("No Ollama server answered at http://127.0.0.1:9/");
            await Assertions.Expect(page.Locator("#composer")).ToHaveCountAsync(0);

            // "Connect Ollama" with a server that answers: its models are usable at once, no restart.
            await using var ollama = await FakeOllamaServer.StartNewAsync();
            await page.FillAsync("#ollama-url", ollama.Root.ToString());
            await page.ClickAsync("#connect-ollama");
            await Assertions.Expect(page.Locator("#composer")).ToBeVisibleAsync();
            await Assertions.Expect(page.GetByTestId("model-setup")).ToHaveCountAsync(0);
            await Assertions.Expect(page.Locator("#model-picker option", new() { HasText = FakeOllamaServer.Llama })).ToHaveCountAsync(1);
            await page.FillAsync("#composer", "hi");
            await page.PressAsync("#composer", "Enter");
            await Assertions.Expect(page.Locator("article.message[data-role=assistant]").Last).ToHaveAttributeAsync("data-status", "complete", new() { Timeout = 30_000 });
            await Assertions.Expect(page.Locator("article.message[data-role=assistant] .content").Last).ToHaveTextAsync(string.Concat(FakeOllamaServer.ChatTokens));

            var me = await server.GetJsonAsync("founder", "/api/v1/users/me");
            Assert.Equal("admin", me.GetProperty("role").GetString());

            // Once an admin exists, /setup is closed.
            await page.GotoAsync(new Uri(server.BaseUrl, "/setup").ToString());
            await page.WaitForURLAsync("**/login");
        });
    }

    [Fact]
    public async Task FirstRun_PullTinyLlama_ShowsProgress_ThenTheChatAnswers()
    {
        // Hugging Face stands in as a local file host that sends the file slowly, so the progress bar can be seen.
        await using var hub = await ModelFileServer.StartAsync();
        var tinyLlama = ModelCatalogue.Entries[0];
        var file = tinyLlama.Source[(tinyLlama.Source.LastIndexOf('/') + 1)..];
        hub.Put($"TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF/resolve/main/{file}");
        hub.PieceDelay = TimeSpan.FromMilliseconds(150);
        await using var server = await E2EServer.StartAsync(withModels: false, new Dictionary<string, string>
        {
            ["Sutazai__Inference__Pull__HuggingFaceBaseUrl"] = hub.BaseUrl,
        });
        var admin = await server.RegisterAsync();
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await BrowserFixture.LaunchAsync(playwright);
        var page = await browser.NewPageAsync();
        await Ui.ShootOnFailureAsync(page, nameof(FirstRun_PullTinyLlama_ShowsProgress_ThenTheChatAnswers), async () =>
        {
            await Ui.SignInAsync(page, server.BaseUrl, admin);
            await page.WaitForURLAsync(server.BaseUrl.ToString());
            await Ui.WaitInteractiveAsync(page);
            await page.ClickAsync("#pull-tinyllama");
            await Assertions.Expect(page.Locator("[data-testid=pull-progress][data-status=Downloading]")).ToBeVisibleAsync();
            await Assertions.Expect(page.Locator("#pull-tinyllama")).ToBeDisabledAsync();

            // When the download is verified and in place, the panel gives way to the chat with the new model.
            await Assertions.Expect(page.Locator("#composer")).ToBeVisibleAsync(new() { Timeout = 60_000 });
            var modelId = Path.GetFileNameWithoutExtension(file);
            await Assertions.Expect(page.Locator("#model-picker option", new() { HasText = modelId })).ToHaveCountAsync(1);
            await page.FillAsync("#composer", "Hi there");
            await page.PressAsync("#composer", "Enter");
            var reply = page.Locator("article.message[data-role=assistant]").Last;
            await Assertions.Expect(reply).ToHaveAttributeAsync("data-status", "complete", new() { Timeout = 60_000 });
            await Assertions.Expect(reply.Locator(".content")).ToHaveTextAsync(E2EServer.ChatReply);
            Assert.True(File.Exists(Path.Combine(server.DataDir, "models", file)));
            Assert.Equal(1, hub.Requests);
        });
    }
}

[Collection(BrowserCollection.Name)]
public sealed class AccountTests(BrowserFixture fixture)
{
    private E2EServer Server => fixture.Server;

    [Fact]
    public async Task Register_SignIn_SignOut()
    {
        await using var context = await fixture.Browser.NewContextAsync();
        var page = await context.NewPageAsync();
        await Ui.ShootOnFailureAsync(page, nameof(Register_SignIn_SignOut), async () =>
        {
            var username = "reg" + Guid.NewGuid().ToString("N")[..8];
            await page.GotoAsync(new Uri(Server.BaseUrl, "/register").ToString());
            await page.FillAsync("#username", username);
            await page.FillAsync("#email", username + "@example.com");
            await page.FillAsync("#password", "short");
            await page.ClickAsync("button[type=submit]");
            await Assertions.Expect(page.Locator("[data-field=password]").First).ToBeVisibleAsync();

            await page.FillAsync("#username", username);
            await page.FillAsync("#email", username + "@example.com");
            await page.FillAsync("#password", E2EServer.Password);
            await page.ClickAsync("button[type=submit]");
            await page.WaitForURLAsync(Server.BaseUrl.ToString());
            await Ui.WaitInteractiveAsync(page);
            await Assertions.Expect(page.GetByTestId("signed-in-as")).ToHaveTextAsync(username);

            var cookie = (await context.CookiesAsync()).Single(c => c.Name == "sutazai.session");
            Assert.True(cookie.HttpOnly);
            Assert.Equal(SameSiteAttribute.Lax, cookie.SameSite);

            await page.ClickAsync("#sign-out");
            await page.WaitForURLAsync("**/login?message=signed-out");
            Assert.DoesNotContain(await context.CookiesAsync(), c => c.Name == "sutazai.session");
            await page.GotoAsync(Server.BaseUrl.ToString());
            await page.WaitForURLAsync("**/login?returnUrl=%2F");

            await Ui.SignInAsync(page, Server.BaseUrl, username);
            await page.WaitForURLAsync(Server.BaseUrl.ToString());
            await Ui.WaitInteractiveAsync(page);
            await Assertions.Expect(page.GetByTestId("signed-in-as")).ToHaveTextAsync(username);
        });
    }

    private const string InvalidOrLocked = "Invalid username or password, or the account is locked for a while after too many failed attempts.";

    [Fact]
    public async Task WrongPasswords_LockTheAccount_WithAMessage()
    {
        var username = await Server.RegisterAsync();
        await using var context = await fixture.Browser.NewContextAsync();
        var page = await context.NewPageAsync();
        await Ui.ShootOnFailureAsync(page, nameof(WrongPasswords_LockTheAccount_WithAMessage), async () =>
        {
            await Ui.SignInAsync(page, Server.BaseUrl, username, "Wrong#Password1!");
            await Assertions.Expect(page.GetByTestId("login-error")).ToHaveTextAsync(InvalidOrLocked);
            await Ui.SignInAsync(page, Server.BaseUrl, username, "Wrong#Password1!");
            await Ui.SignInAsync(page, Server.BaseUrl, username, "Wrong#Password1!");
            await Assertions.Expect(page.GetByTestId("login-error")).ToHaveTextAsync(InvalidOrLocked);
            // Even the right password is refused while locked, with the answer an unknown account gets (no enumeration).
            await Ui.SignInAsync(page, Server.BaseUrl, username);
            await Assertions.Expect(page.GetByTestId("login-error")).ToHaveTextAsync(InvalidOrLocked);
            Assert.DoesNotContain(await context.CookiesAsync(), c => c.Name == "sutazai.session");
        });
    }

    [Fact]
    public async Task Api_StaysBearerOnly_WhileTheBrowserHasACookie()
    {
        var username = await Server.RegisterAsync();
        await using var context = await fixture.Browser.NewContextAsync();
        var page = await context.NewPageAsync();
        await Ui.SignInAsync(page, Server.BaseUrl, username);
        await page.WaitForURLAsync(Server.BaseUrl.ToString());
        var response = await page.APIRequest.GetAsync(new Uri(Server.BaseUrl, "/api/v1/users/me").ToString());
        Assert.Equal(401, response.Status);
    }
}

using Microsoft.Playwright;

namespace Sutazai.E2E;

/// <summary>
/// Debian's Chromium (never a downloaded browser) driven by Playwright, plus one shared server with an admin account.
/// </summary>
public sealed class BrowserFixture : IAsyncLifetime
{
    public const string ChromiumPath = "/usr/bin/chromium";

    public IPlaywright Playwright { get; private set; } = null!;

    public IBrowser Browser { get; private set; } = null!;

    public E2EServer Server { get; private set; } = null!;

    public string Admin { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Server = await E2EServer.StartAsync();
        Admin = await Server.RegisterAsync("admin");
        Playwright = await Microsoft.Playwright.Playwright.CreateAsync();
        Browser = await LaunchAsync(Playwright);
    }

    public static Task<IBrowser> LaunchAsync(IPlaywright playwright)
    {
        if (!File.Exists(ChromiumPath)) throw new InvalidOperationException($"{ChromiumPath} is missing: scripts/test.sh installs Debian's chromium package.");
        return playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
        });
    }

    public async Task DisposeAsync()
    {
        await Browser.DisposeAsync();
        Playwright.Dispose();
        await Server.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class BrowserCollection : ICollectionFixture<BrowserFixture>
{
    public const string Name = "browser";
}

public static class Ui
{
    /// <summary>Runs a test step on a page; on failure saves a screenshot under TestResults/screenshots, then rethrows.</summary>
    public static async Task ShootOnFailureAsync(IPage page, string name, Func<Task> test)
    {
        try
        {
            await test();
        }
        catch (Exception)
        {
            var dir = Path.Combine(AppContext.BaseDirectory, "TestResults", "screenshots");
            Directory.CreateDirectory(dir);
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(dir, name + ".png"), FullPage = true });
            throw;
        }
    }

    public static async Task SignInAsync(IPage page, Uri baseUrl, string username, string password = E2EServer.Password)
    {
        await page.GotoAsync(new Uri(baseUrl, "/login").ToString());
        await page.FillAsync("#login", username);
        await page.FillAsync("#password", password);
        await page.ClickAsync("button[type=submit]");
    }

    /// <summary>Waits until the interactive circuit is up (the page's buttons answer clicks).</summary>
    public static async Task WaitInteractiveAsync(IPage page) =>
        await page.WaitForFunctionAsync("() => document.documentElement.dataset.interactive === 'true'",
            null, new PageWaitForFunctionOptions { Timeout = 20_000 });
}

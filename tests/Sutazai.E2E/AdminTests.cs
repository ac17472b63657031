using Microsoft.Playwright;

namespace Sutazai.E2E;

[Collection(BrowserCollection.Name)]
public sealed class AdminTests(BrowserFixture fixture)
{
    private E2EServer Server => fixture.Server;

    [Fact]
    public async Task DeactivatingAUser_EndsTheirOpenTabOnTheNextAction()
    {
        var username = await Server.RegisterAsync();
        await using var userContext = await fixture.Browser.NewContextAsync();
        var userPage = await userContext.NewPageAsync();
        await Ui.SignInAsync(userPage, Server.BaseUrl, username);
        await userPage.WaitForURLAsync(Server.BaseUrl.ToString());
        await Ui.WaitInteractiveAsync(userPage);

        await using var adminContext = await fixture.Browser.NewContextAsync();
        var adminPage = await adminContext.NewPageAsync();
        await Ui.ShootOnFailureAsync(adminPage, nameof(DeactivatingAUser_EndsTheirOpenTabOnTheNextAction), async () =>
        {
            await Ui.SignInAsync(adminPage, Server.BaseUrl, fixture.Admin);
            await adminPage.WaitForURLAsync(Server.BaseUrl.ToString());
            await adminPage.GotoAsync(new Uri(Server.BaseUrl, "/admin/users").ToString());
            await Ui.WaitInteractiveAsync(adminPage);
            var row = adminPage.Locator($"[data-testid=user-row][data-username='{username}']");
            await row.GetByRole(AriaRole.Button, new() { Name = $"Deactivate {username}", Exact = true }).ClickAsync();
            // Exact: "Activate u…" is also a substring of "Deactivate u…", which would match before the change is stored.
            await Assertions.Expect(row.GetByRole(AriaRole.Button, new() { Name = $"Activate {username}", Exact = true })).ToBeVisibleAsync();
        });

        await Ui.ShootOnFailureAsync(userPage, nameof(DeactivatingAUser_EndsTheirOpenTabOnTheNextAction) + "-user", async () =>
        {
            await userPage.FillAsync("#composer", "Am I still here?");
            await userPage.PressAsync("#composer", "Enter");
            // The sign-in page, with or without a returnUrl (the tab may be sent there by the periodic revalidation).
            await Assertions.Expect(userPage).ToHaveURLAsync(new System.Text.RegularExpressions.Regex(@"/login(\?returnUrl=[^&]*)?$"), new() { Timeout = 30_000 });
            await Assertions.Expect(userPage.Locator("h1")).ToHaveTextAsync("Sign in");
            await Ui.SignInAsync(userPage, Server.BaseUrl, username);
            await Assertions.Expect(userPage.GetByTestId("login-error")).ToContainTextAsync("deactivated");
            // The refused action left nothing behind: no conversation was created for the deactivated account.
            await using var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(Server.DataDir, "sutazai.db")};Mode=ReadOnly");
            await db.OpenAsync();
            await using var count = db.CreateCommand();
            count.CommandText = "SELECT COUNT(*) FROM conversations c JOIN users u ON u.Id = c.UserId WHERE u.UserName = $name";
            count.Parameters.AddWithValue("$name", username);
            Assert.Equal(0L, (long)(await count.ExecuteScalarAsync())!);
        });
    }

    [Fact]
    public async Task SystemMonitor_ShowsLiveCharts_AndTheTokensPerSecondOfAReply()
    {
        await using var context = await fixture.Browser.NewContextAsync();
        var page = await context.NewPageAsync();
        await Ui.ShootOnFailureAsync(page, nameof(SystemMonitor_ShowsLiveCharts_AndTheTokensPerSecondOfAReply), async () =>
        {
            await Ui.SignInAsync(page, Server.BaseUrl, fixture.Admin);
            await page.WaitForURLAsync(Server.BaseUrl.ToString());
            await Ui.WaitInteractiveAsync(page);
            await page.FillAsync("#composer", "Count my tokens");
            await page.PressAsync("#composer", "Enter");
            var reply = page.Locator("article.message[data-role=assistant]").Last;
            await Assertions.Expect(reply).ToHaveAttributeAsync("data-status", "complete");
            await Assertions.Expect(reply.Locator(".content")).ToHaveTextAsync(E2EServer.ChatReply);

            await page.GotoAsync(new Uri(Server.BaseUrl, "/admin/monitor").ToString());
            await Ui.WaitInteractiveAsync(page);
            foreach (var key in new[] { "tokens", "requests", "queue", "working-set", "gc-heap" })
            {
                var chart = page.GetByTestId($"chart-{key}");
                await Assertions.Expect(chart).ToBeVisibleAsync();
                await Assertions.Expect(chart.Locator("svg path").First).ToBeAttachedAsync();
            }
            var tokens = page.GetByTestId("chart-tokens");
            await Assertions.Expect(tokens).Not.ToHaveAttributeAsync("data-peak", "0", new() { Timeout = 10_000 });
            Assert.True(double.Parse((await tokens.GetAttributeAsync("data-peak"))!, System.Globalization.CultureInfo.InvariantCulture) > 0);
            await Assertions.Expect(page.GetByTestId("chart-working-set")).Not.ToHaveAttributeAsync("data-latest", "0");
            // The charts move: a later refresh shows a newer sample.
            var at = (await tokens.GetAttributeAsync("data-at"))!;
            await Assertions.Expect(tokens).Not.ToHaveAttributeAsync("data-at", at, new() { Timeout = 10_000 });
            await Assertions.Expect(page.GetByTestId("health")).ToBeVisibleAsync();
            // The node registry: this server, up (the table refreshes every 10 s).
            var self = page.GetByTestId("nodes").Locator("tbody tr[data-status=up]");
            await Assertions.Expect(self).ToHaveCountAsync(1, new() { Timeout = 15_000 });
            await Assertions.Expect(self).ToContainTextAsync("(this node)");
            await Assertions.Expect(self).ToContainTextAsync("all");
        });
    }

    [Fact]
    public async Task SetAsDefault_OnTheModelsPage_ChangesTheDefaultModel()
    {
        await using var context = await fixture.Browser.NewContextAsync();
        var page = await context.NewPageAsync();
        try
        {
            await Ui.ShootOnFailureAsync(page, nameof(SetAsDefault_OnTheModelsPage_ChangesTheDefaultModel), async () =>
            {
                await Ui.SignInAsync(page, Server.BaseUrl, fixture.Admin);
                await page.WaitForURLAsync(Server.BaseUrl.ToString());
                await page.GotoAsync(new Uri(Server.BaseUrl, "/models").ToString());
                await Ui.WaitInteractiveAsync(page);
                var configured = page.Locator($"[data-testid=models] tr[data-model='{E2EServer.Model}']");
                var other = page.Locator($"[data-testid=models] tr[data-model='{E2EServer.Looping}']");
                await Assertions.Expect(configured).ToHaveAttributeAsync("data-default", "true");
                await Assertions.Expect(other).ToHaveAttributeAsync("data-default", "false");

                await other.GetByRole(AriaRole.Button, new() { Name = $"Set {E2EServer.Looping} as default" }).ClickAsync();
                await Assertions.Expect(other).ToHaveAttributeAsync("data-default", "true");
                await Assertions.Expect(other.GetByTestId("default-chip")).ToBeVisibleAsync();
                await Assertions.Expect(configured).ToHaveAttributeAsync("data-default", "false");
                var listing = await Server.GetJsonAsync(fixture.Admin, "/api/v1/models");
                Assert.Equal(E2EServer.Looping, listing.GetProperty("defaultModel").GetString());

                await configured.GetByRole(AriaRole.Button, new() { Name = $"Set {E2EServer.Model} as default" }).ClickAsync();
                await Assertions.Expect(configured).ToHaveAttributeAsync("data-default", "true");
                Assert.Equal(E2EServer.Model, (await Server.GetJsonAsync(fixture.Admin, "/api/v1/models")).GetProperty("defaultModel").GetString());
            });
        }
        finally
        {
            // the other tests of this shared server expect the deterministic model as the default
            Assert.Equal(System.Net.HttpStatusCode.OK, await Server.PutJsonAsync(fixture.Admin, "/api/v1/models/default", new { model = E2EServer.Model }));
        }
    }

    [Fact]
    public async Task PlainUser_CannotOpenAdminPages()
    {
        var username = await Server.RegisterAsync();
        await using var context = await fixture.Browser.NewContextAsync();
        var page = await context.NewPageAsync();
        await Ui.SignInAsync(page, Server.BaseUrl, username);
        await page.WaitForURLAsync(Server.BaseUrl.ToString());
        var response = await page.GotoAsync(new Uri(Server.BaseUrl, "/admin/users").ToString());
        await page.WaitForURLAsync("**/forbidden**");
        await Assertions.Expect(page.Locator("h1")).ToHaveTextAsync("Not allowed");
        Assert.NotNull(response);
    }
}

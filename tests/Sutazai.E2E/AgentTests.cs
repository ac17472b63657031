using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;

namespace Sutazai.E2E;

/// <summary>
/// The JARVIS page with a real agent run: the tool-calling tiny model asks for <c>shell_run {"command":"echo hi"}</c>,
/// the page shows the approval card, and the command runs only after the click.
/// </summary>
[Collection(BrowserCollection.Name)]
public sealed partial class AgentTests(BrowserFixture fixture)
{
    private E2EServer Server => fixture.Server;

    private async Task<(IBrowserContext Context, IPage Page, string User)> SignedInAsync(string? username = null)
    {
        username ??= await Server.RegisterAsync();
        var context = await fixture.Browser.NewContextAsync();
        var page = await context.NewPageAsync();
        await Ui.SignInAsync(page, Server.BaseUrl, username);
        await page.WaitForURLAsync(Server.BaseUrl.ToString());
        return (context, page, username);
    }

    private async Task OpenJarvisAsync(IPage page)
    {
        await page.GotoAsync(new Uri(Server.BaseUrl, "/jarvis").ToString());
        await Ui.WaitInteractiveAsync(page);
        await page.SelectOptionAsync("#jarvis-model", E2EServer.ToolCaller);
    }

    private static async Task AskAsync(IPage page, string text)
    {
        await page.FillAsync("#jarvis-input", text);
        await page.ClickAsync("#jarvis-send");
    }

    [GeneratedRegex(@"^\s*hi\s*$")]
    private static partial Regex Hi();

    [Fact]
    public async Task ApprovalCard_Approve_ShowsTheCommandsResult()
    {
        var (context, page, user) = await SignedInAsync();
        await using var _ = context;
        await Ui.ShootOnFailureAsync(page, nameof(ApprovalCard_Approve_ShowsTheCommandsResult), async () =>
        {
            await OpenJarvisAsync(page);
            await AskAsync(page, "run echo hi");
            await Assertions.Expect(page.GetByTestId("jarvis-route")).ToHaveAttributeAsync("data-agent", "shell");
            var card = page.GetByTestId("approval-card").First;
            await Assertions.Expect(card).ToHaveAttributeAsync("data-status", "pending", new() { Timeout = 30_000 });
            await Assertions.Expect(card.GetByTestId("approval-command")).ToHaveTextAsync("echo hi");
            await Assertions.Expect(card.GetByTestId("risk")).ToHaveTextAsync("risk: low");
            // Nothing ran before the click.
            await Assertions.Expect(page.GetByTestId("exit-code")).ToHaveCountAsync(0);

            await card.Locator("button.approve").ClickAsync();
            await Assertions.Expect(card).ToHaveAttributeAsync("data-status", "approved");
            await Assertions.Expect(page.GetByTestId("exit-code").First).ToHaveTextAsync("0", new() { Timeout = 30_000 });
            await Assertions.Expect(page.GetByTestId("stdout").First).ToHaveTextAsync(Hi());

            // The stored run agrees: the approved call ran and printed "hi".
            var runId = await page.GetByTestId("run").First.GetAttributeAsync("data-run-id");
            var run = await Server.GetJsonAsync(user, $"/api/v1/runs/{runId}");
            Assert.Equal("shell", run.GetProperty("agent").GetString());
            var result = run.GetProperty("steps").EnumerateArray().First(s => s.GetProperty("kind").GetString() == "tool_result").GetProperty("data").GetProperty("result");
            Assert.Equal(0, result.GetProperty("exitCode").GetInt32());
            Assert.Equal("hi\n", result.GetProperty("stdout").GetString());

            // The model asks for the same call again; cancelling ends the run.
            await Assertions.Expect(page.GetByTestId("approval-card").Nth(1)).ToHaveAttributeAsync("data-status", "pending", new() { Timeout = 30_000 });
            await page.Locator(".cancel-run").First.ClickAsync();
            await Assertions.Expect(page.GetByTestId("run").First).ToHaveAttributeAsync("data-status", "cancelled");
            Assert.Equal("cancelled", (await Server.GetJsonAsync(user, $"/api/v1/runs/{runId}")).GetProperty("status").GetString());
        });
    }

    [Fact]
    public async Task ApprovalCard_Deny_ShowsTheDenial_AndNothingRuns()
    {
        var (context, page, user) = await SignedInAsync();
        await using var _ = context;
        await Ui.ShootOnFailureAsync(page, nameof(ApprovalCard_Deny_ShowsTheDenial_AndNothingRuns), async () =>
        {
            await OpenJarvisAsync(page);
            await AskAsync(page, "run echo hi");
            var card = page.GetByTestId("approval-card").First;
            await Assertions.Expect(card).ToHaveAttributeAsync("data-status", "pending", new() { Timeout = 30_000 });
            await card.Locator("button.deny").ClickAsync();
            await Assertions.Expect(card).ToHaveAttributeAsync("data-status", "denied");
            await Assertions.Expect(page.GetByTestId("denial").First).ToBeVisibleAsync(new() { Timeout = 30_000 });
            await Assertions.Expect(page.GetByTestId("denied-result").First).ToBeVisibleAsync();
            await Assertions.Expect(page.GetByTestId("exit-code")).ToHaveCountAsync(0);

            var runId = await page.GetByTestId("run").First.GetAttributeAsync("data-run-id");
            var run = await Server.GetJsonAsync(user, $"/api/v1/runs/{runId}");
            var kinds = run.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("kind").GetString()).ToList();
            Assert.Contains("denial", kinds);
            Assert.DoesNotContain("tool_call", kinds);

            // The audit (admin) records the denial.
            var audit = await Server.GetJsonAsync(fixture.Admin, "/api/v1/admin/approvals");
            Assert.Contains(audit.EnumerateArray(), a => a.GetProperty("runId").GetString() == runId && a.GetProperty("status").GetString() == "denied");
            await page.Locator(".cancel-run").First.ClickAsync();
        });
    }

    [Fact]
    public async Task AnotherUsersRun_ShowsNotFound_AndItsWorkspaceIsNotServed()
    {
        var owner = await Server.RegisterAsync();
        using var start = new HttpRequestMessage(HttpMethod.Post, new Uri(Server.BaseUrl, "/api/v1/agents/shell/runs"))
        {
            Content = JsonContent.Create(new { input = "list files", model = E2EServer.ToolCaller }),
        };
        start.Headers.Authorization = new("Bearer", await Server.AccessTokenAsync(owner));
        using var started = await Server.Http.SendAsync(start);
        Assert.Equal(System.Net.HttpStatusCode.Accepted, started.StatusCode);
        var runId = (await started.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("runId").GetString();

        var (context, page, _) = await SignedInAsync();
        await using var __ = context;
        await Ui.ShootOnFailureAsync(page, nameof(AnotherUsersRun_ShowsNotFound_AndItsWorkspaceIsNotServed), async () =>
        {
            await page.GotoAsync(new Uri(Server.BaseUrl, $"/runs/{runId}").ToString());
            await Ui.WaitInteractiveAsync(page);
            await Assertions.Expect(page.GetByTestId("run-not-found")).ToBeVisibleAsync();
            await Assertions.Expect(page.GetByTestId("run")).ToHaveCountAsync(0);
            var zip = await context.APIRequest.GetAsync(new Uri(Server.BaseUrl, $"/ui/runs/{runId}/workspace.zip").ToString());
            Assert.Equal(404, zip.Status);
        });

        // The owner sees it.
        var (ownerContext, ownerPage, _) = await SignedInAsync(owner);
        await using var ___ = ownerContext;
        await ownerPage.GotoAsync(new Uri(Server.BaseUrl, $"/runs/{runId}").ToString());
        await Ui.WaitInteractiveAsync(ownerPage);
        await Assertions.Expect(ownerPage.GetByTestId("run-input")).ToHaveTextAsync("list files");
        await Assertions.Expect(ownerPage.GetByTestId("approval-card").First).ToBeVisibleAsync(new() { Timeout = 30_000 });
        await ownerPage.Locator(".cancel-run").First.ClickAsync();
        await Assertions.Expect(ownerPage.GetByTestId("run")).ToHaveAttributeAsync("data-status", "cancelled");
    }

    [Fact]
    public async Task XssInAnAgentInput_RendersAsText()
    {
        var (context, page, user) = await SignedInAsync();
        await using var _ = context;
        var dialogs = 0;
        page.Dialog += (_, d) => { dialogs++; _ = d.DismissAsync(); };
        const string payload = "run <img src=x onerror=alert(1)><script>alert(2)</script>";
        await Ui.ShootOnFailureAsync(page, nameof(XssInAnAgentInput_RendersAsText), async () =>
        {
            await OpenJarvisAsync(page);
            await AskAsync(page, payload);
            await Assertions.Expect(page.GetByTestId("jarvis-text")).ToHaveTextAsync(payload);
            await Assertions.Expect(page.GetByTestId("approval-card").First).ToBeVisibleAsync(new() { Timeout = 30_000 });
            var runId = await page.GetByTestId("run").First.GetAttributeAsync("data-run-id");
            await page.Locator(".cancel-run").First.ClickAsync();

            await page.GotoAsync(new Uri(Server.BaseUrl, $"/runs/{runId}").ToString());
            await Ui.WaitInteractiveAsync(page);
            await Assertions.Expect(page.GetByTestId("run-input")).ToHaveTextAsync(payload);
            await Assertions.Expect(page.Locator(".run-panel img, .run-panel script")).ToHaveCountAsync(0);
            await page.GotoAsync(new Uri(Server.BaseUrl, "/runs").ToString());
            await Ui.WaitInteractiveAsync(page);
            await Assertions.Expect(page.Locator($"tr[data-run-id='{runId}'] .run-input")).ToHaveTextAsync(payload);
            await Assertions.Expect(page.Locator("table[data-testid=runs] img, table[data-testid=runs] script")).ToHaveCountAsync(0);
            Assert.Equal(0, dialogs);
            Assert.Equal(payload, (await Server.GetJsonAsync(user, $"/api/v1/runs/{runId}")).GetProperty("input").GetString());
        });
    }
}

using System.Text.RegularExpressions;
using Deque.AxeCore.Playwright;
using Microsoft.Playwright;

namespace Sutazai.E2E;

[Collection(BrowserCollection.Name)]
public sealed partial class ChatTests(BrowserFixture fixture)
{
    private E2EServer Server => fixture.Server;

    private async Task<(IBrowserContext Context, IPage Page, string User)> SignedInAsync(BrowserNewContextOptions? options = null, string? username = null)
    {
        username ??= await Server.RegisterAsync();
        var context = await fixture.Browser.NewContextAsync(options ?? new BrowserNewContextOptions());
        await context.GrantPermissionsAsync(["clipboard-read", "clipboard-write"], new BrowserContextGrantPermissionsOptions { Origin = Server.BaseUrl.ToString().TrimEnd('/') });
        var page = await context.NewPageAsync();
        await Ui.SignInAsync(page, Server.BaseUrl, username);
        await page.WaitForURLAsync(Server.BaseUrl.ToString());
        await Ui.WaitInteractiveAsync(page);
        return (context, page, username);
    }

    private static async Task SendAsync(IPage page, string text)
    {
        await page.FillAsync("#composer", text);
        await page.PressAsync("#composer", "Enter");
    }

    private static ILocator Replies(IPage page) => page.Locator("article.message[data-role=assistant]");

    [GeneratedRegex(@"/c/([0-9a-f-]{36})$")]
    private static partial Regex ConversationUrl();

    [Fact]
    public async Task Streaming_ShowsTheExactModelText_AndItPersistsAcrossReload()
    {
        var (context, page, user) = await SignedInAsync();
        await using var _ = context;
        await Ui.ShootOnFailureAsync(page, nameof(Streaming_ShowsTheExactModelText_AndItPersistsAcrossReload), async () =>
        {
            await SendAsync(page, "Hi there");
            var reply = Replies(page).Last;
            await Assertions.Expect(reply).ToHaveAttributeAsync("data-status", "complete", new() { Timeout = 60_000 });
            // Poll the address rather than wait for a navigation event: the page's pushState may land before the wait starts.
            await Assertions.Expect(page).ToHaveURLAsync(ConversationUrl());
            await Assertions.Expect(reply.Locator(".content")).ToHaveTextAsync(E2EServer.ChatReply);
            await Assertions.Expect(page.Locator("article.message[data-role=user] .content")).ToHaveTextAsync("Hi there");
            await Assertions.Expect(page.Locator("#composer")).ToHaveValueAsync("");

            var id = ConversationUrl().Match(page.Url).Groups[1].Value;
            var stored = await Server.GetJsonAsync(user, $"/api/v1/conversations/{id}/messages");
            Assert.Equal(E2EServer.ChatReply, stored[1].GetProperty("content").GetString());

            await page.ReloadAsync(new() { WaitUntil = WaitUntilState.DOMContentLoaded });
            await Ui.WaitInteractiveAsync(page);
            await Assertions.Expect(Replies(page).Last.Locator(".content")).ToHaveTextAsync(E2EServer.ChatReply);
            await Assertions.Expect(page.Locator($".conversation-item[data-conversation-id='{id}']")).ToBeVisibleAsync();
        });
    }

    /// <summary>
    /// The reply comes from an OpenAI-compatible backend that sends its first token and then holds the stream open,
    /// so the reply cannot finish before Stop is clicked however slow the machine is.
    /// </summary>
    [Fact]
    public async Task Stop_EndsTheReplyMidStream_AndKeepsThePartialAnswer()
    {
        await using var backend = await Sutazai.Inference.Tests.Fakes.FakeOpenAIServer.StartNewAsync();
        backend.HoldAfterFirstChunk = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        backend.HoldAfterChunk = 2; // the role chunk, then "Hi"
        await using var server = await E2EServer.StartAsync(withModels: false, environment: new Dictionary<string, string>
        {
            ["Sutazai__Inference__Provider"] = "openai",
            ["Sutazai__Inference__OpenAI__BaseUrl"] = backend.BaseUrl,
            ["Sutazai__Inference__DefaultModel"] = Sutazai.Inference.Tests.Fakes.FakeOpenAIServer.Qwen,
        });
        var user = await server.RegisterAsync();
        var context = await fixture.Browser.NewContextAsync();
        await using var _ = context;
        var page = await context.NewPageAsync();
        await Ui.SignInAsync(page, server.BaseUrl, user);
        await page.WaitForURLAsync(server.BaseUrl.ToString());
        await Ui.WaitInteractiveAsync(page);
        await Ui.ShootOnFailureAsync(page, nameof(Stop_EndsTheReplyMidStream_AndKeepsThePartialAnswer), async () =>
        {
            await SendAsync(page, "Talk forever");
            await Assertions.Expect(page.GetByTestId("streaming-reply")).ToContainTextAsync("Hi", new() { Timeout = 30_000 });
            await page.ClickAsync("#stop-button");
            var reply = Replies(page).Last;
            await Assertions.Expect(reply).ToHaveAttributeAsync("data-status", "stopped", new() { Timeout = 15_000 });
            await Assertions.Expect(reply.Locator(".content")).ToHaveTextAsync("Hi");

            var id = ConversationUrl().Match(page.Url).Groups[1].Value;
            var stored = await server.GetJsonAsync(user, $"/api/v1/conversations/{id}/messages");
            Assert.Equal("stopped", stored[1].GetProperty("status").GetString());
            Assert.Equal("Hi", stored[1].GetProperty("content").GetString());
            await Assertions.Expect(page.Locator("#send-button")).ToBeVisibleAsync();
        });
    }

    [Fact]
    public async Task EditingAMessage_MakesABranch_ThatCanBeNavigated()
    {
        var (context, page, _) = await SignedInAsync();
        await using var __ = context;
        await Ui.ShootOnFailureAsync(page, nameof(EditingAMessage_MakesABranch_ThatCanBeNavigated), async () =>
        {
            await SendAsync(page, "First question");
            await Assertions.Expect(Replies(page).Last).ToHaveAttributeAsync("data-status", "complete");
            await page.GetByLabel("Edit message").ClickAsync();
            await page.FillAsync("#edit-box", "Second question");
            await page.ClickAsync("#save-edit");
            await Assertions.Expect(Replies(page).Last).ToHaveAttributeAsync("data-status", "complete");
            var user = page.Locator("article.message[data-role=user]");
            await Assertions.Expect(user.Locator(".content")).ToHaveTextAsync("Second question");
            await Assertions.Expect(user.GetByTestId("branch-position")).ToHaveTextAsync("2/2");

            await user.GetByLabel("Previous version").ClickAsync();
            await Assertions.Expect(user.Locator(".content")).ToHaveTextAsync("First question");
            await Assertions.Expect(user.GetByTestId("branch-position")).ToHaveTextAsync("1/2");
            await Assertions.Expect(Replies(page).Last.Locator(".content")).ToHaveTextAsync(E2EServer.ChatReply);

            await user.GetByLabel("Next version").ClickAsync();
            await Assertions.Expect(user.Locator(".content")).ToHaveTextAsync("Second question");
        });
    }

    [Fact]
    public async Task DeletingAConversation_RemovesItFromTheListAndTheServer()
    {
        var (context, page, user) = await SignedInAsync();
        await using var _ = context;
        await Ui.ShootOnFailureAsync(page, nameof(DeletingAConversation_RemovesItFromTheListAndTheServer), async () =>
        {
            await SendAsync(page, "To be deleted");
            await Assertions.Expect(Replies(page).Last).ToHaveAttributeAsync("data-status", "complete");
            var id = ConversationUrl().Match(page.Url).Groups[1].Value;
            var item = page.Locator($".conversation-item[data-conversation-id='{id}']");
            await item.GetByRole(AriaRole.Button, new() { NameRegex = new Regex("^Delete ") }).ClickAsync();
            await page.ClickAsync("#confirm-delete");
            await Assertions.Expect(item).ToHaveCountAsync(0);
            await page.WaitForURLAsync(Server.BaseUrl.ToString());
            var list = await Server.GetJsonAsync(user, "/api/v1/conversations");
            Assert.Equal(0, list.GetProperty("total").GetInt32());
        });
    }

    [Fact]
    public async Task AnotherUsersConversationUrl_ShowsNotFound()
    {
        var (contextA, pageA, _) = await SignedInAsync();
        await using var _a = contextA;
        await SendAsync(pageA, "Private to A");
        await Assertions.Expect(Replies(pageA).Last).ToHaveAttributeAsync("data-status", "complete");
        var url = pageA.Url;

        var (contextB, pageB, _) = await SignedInAsync();
        await using var _b = contextB;
        await Ui.ShootOnFailureAsync(pageB, nameof(AnotherUsersConversationUrl_ShowsNotFound), async () =>
        {
            await pageB.GotoAsync(url);
            await Ui.WaitInteractiveAsync(pageB);
            await Assertions.Expect(pageB.GetByTestId("conversation-not-found")).ToBeVisibleAsync();
            await Assertions.Expect(pageB.GetByText("Private to A")).ToHaveCountAsync(0);
            await Assertions.Expect(pageB.Locator("#composer")).ToHaveCountAsync(0);
        });
    }

    [Fact]
    public async Task MarkupInANameAMessageAndAReply_IsShownAsText()
    {
        const string payload = "<img src=x onerror=alert(3)><script>alert(4)</script>";
        var (context, page, _) = await SignedInAsync();
        await using var _ = context;
        var dialogs = 0;
        page.Dialog += (_, d) =>
        {
            dialogs++;
            _ = d.DismissAsync();
        };
        await Ui.ShootOnFailureAsync(page, nameof(MarkupInANameAMessageAndAReply_IsShownAsText), async () =>
        {
            await page.SelectOptionAsync("#model-picker", E2EServer.Xss);
            await SendAsync(page, payload);
            var reply = Replies(page).Last;
            await Assertions.Expect(reply).ToHaveAttributeAsync("data-status", "complete", new() { Timeout = 30_000 });
            await Assertions.Expect(reply.Locator(".content")).ToHaveTextAsync(E2EServer.XssReply);
            await Assertions.Expect(page.Locator("article.message[data-role=user] .content")).ToHaveTextAsync(payload);

            var id = ConversationUrl().Match(page.Url).Groups[1].Value;
            var item = page.Locator($".conversation-item[data-conversation-id='{id}']");
            await item.GetByRole(AriaRole.Button, new() { NameRegex = new Regex("^Rename ") }).ClickAsync();
            await page.FillAsync("#rename-input", payload);
            await page.PressAsync("#rename-input", "Enter");
            await Assertions.Expect(page.GetByTestId("conversation-title")).ToHaveTextAsync(payload);
            await Assertions.Expect(item.Locator("a")).ToHaveTextAsync(payload);

            await page.ReloadAsync(new() { WaitUntil = WaitUntilState.DOMContentLoaded });
            await Ui.WaitInteractiveAsync(page);
            await Assertions.Expect(Replies(page).Last.Locator(".content")).ToHaveTextAsync(E2EServer.XssReply);
            Assert.Equal(0, await page.Locator(".messages script, .messages img, .conversation-pane script, .conversation-pane img, h1 img").CountAsync());
            Assert.Equal(0, dialogs);
        });
    }

    [Fact]
    public async Task ThemeToggle_SwitchesAndIsRemembered()
    {
        var (context, page, _) = await SignedInAsync(new BrowserNewContextOptions { ColorScheme = ColorScheme.Light });
        await using var _ = context;
        await Ui.ShootOnFailureAsync(page, nameof(ThemeToggle_SwitchesAndIsRemembered), async () =>
        {
            var toggle = page.Locator("#theme-toggle");
            await Assertions.Expect(toggle).ToHaveAttributeAsync("data-theme", "light");
            var lightBackground = await page.EvaluateAsync<string>("getComputedStyle(document.body).backgroundColor");
            await toggle.ClickAsync();
            await Assertions.Expect(toggle).ToHaveAttributeAsync("data-theme", "dark");
            await Assertions.Expect(toggle).ToHaveAttributeAsync("aria-label", "Switch to light theme");
            await page.WaitForFunctionAsync($"() => getComputedStyle(document.body).backgroundColor !== '{lightBackground}'");

            await page.ReloadAsync(new() { WaitUntil = WaitUntilState.DOMContentLoaded });
            await Ui.WaitInteractiveAsync(page);
            await Assertions.Expect(page.Locator("#theme-toggle")).ToHaveAttributeAsync("data-theme", "dark");
        });
    }

    [Fact]
    public async Task SystemDarkMode_IsTheDefault()
    {
        var (context, page, _) = await SignedInAsync(new BrowserNewContextOptions { ColorScheme = ColorScheme.Dark });
        await using var _ = context;
        await Assertions.Expect(page.Locator("#theme-toggle")).ToHaveAttributeAsync("data-theme", "dark");
    }

    [Fact]
    public async Task PhoneWidth_ChatsWithoutHorizontalScroll()
    {
        var (context, page, _) = await SignedInAsync(new BrowserNewContextOptions
        {
            ViewportSize = new ViewportSize { Width = 375, Height = 740 }, IsMobile = true, HasTouch = true,
        });
        await using var _ = context;
        await Ui.ShootOnFailureAsync(page, nameof(PhoneWidth_ChatsWithoutHorizontalScroll), async () =>
        {
            await Assertions.Expect(page.Locator("#composer")).ToBeVisibleAsync();
            await Assertions.Expect(page.Locator("#send-button")).ToBeInViewportAsync();
            await page.FillAsync("#composer", "From my phone");
            await page.ClickAsync("#send-button");
            await Assertions.Expect(Replies(page).Last.Locator(".content")).ToHaveTextAsync(E2EServer.ChatReply);
            var overflow = await page.EvaluateAsync<bool>("document.documentElement.scrollWidth > window.innerWidth");
            Assert.False(overflow);
            await page.GetByLabel("Show conversations").ClickAsync();
            await Assertions.Expect(page.Locator(".conversation-pane")).ToBeVisibleAsync();
        });
    }

    [Fact]
    public async Task DraftSurvivesAReload()
    {
        var (context, page, _) = await SignedInAsync();
        await using var _ = context;
        await Ui.ShootOnFailureAsync(page, nameof(DraftSurvivesAReload), async () =>
        {
            await page.Locator("#composer").PressSequentiallyAsync("half-typed thought");
            await page.ReloadAsync(new() { WaitUntil = WaitUntilState.DOMContentLoaded });
            await Ui.WaitInteractiveAsync(page);
            await Assertions.Expect(page.Locator("#composer")).ToHaveValueAsync("half-typed thought");
            var storage = await page.EvaluateAsync<string>("JSON.stringify(Object.keys(sessionStorage).concat(Object.keys(localStorage)))");
            Assert.DoesNotContain("token", storage, StringComparison.OrdinalIgnoreCase);
        });
    }

    [Fact]
    public async Task ChatPage_HasNoSeriousAccessibilityViolations()
    {
        var (context, page, _) = await SignedInAsync();
        await using var _ = context;
        await Ui.ShootOnFailureAsync(page, nameof(ChatPage_HasNoSeriousAccessibilityViolations), async () =>
        {
            await SendAsync(page, "Accessible?");
            await Assertions.Expect(Replies(page).Last).ToHaveAttributeAsync("data-status", "complete");
            var results = await page.RunAxe();
            var serious = results.Violations.Where(v => v.Impact is "serious" or "critical")
                .Select(v => $"{v.Id} ({v.Impact}): {v.Help} — {string.Join(", ", v.Nodes.Select(n => n.Html))}").ToList();
            Assert.True(serious.Count == 0, string.Join("\n", serious));

            await page.GotoAsync(new Uri(Server.BaseUrl, "/login").ToString());
            var login = await page.RunAxe();
            var loginSerious = login.Violations.Where(v => v.Impact is "serious" or "critical").Select(v => $"{v.Id}: {v.Help}").ToList();
            Assert.True(loginSerious.Count == 0, string.Join("\n", loginSerious));
        });
    }
}

using System.Net;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Identity;

/// <summary>The web UI's server-rendered forms, posted as a browser does: the page's antiforgery token and cookie.</summary>
internal static partial class UiForms
{
    [GeneratedRegex("name=\"__RequestVerificationToken\" value=\"([^\"]+)\"")]
    private static partial Regex AntiforgeryField();

    [GeneratedRegex("role=\"alert\"[^>]*>(.*?)</div>", RegexOptions.Singleline)]
    private static partial Regex Alert();

    /// <summary>
    /// Loads <paramref name="path"/> (or the page that shows the form, <paramref name="formPage"/>) for its antiforgery
    /// token, then posts the form named <paramref name="handler"/>.
    /// </summary>
    public static async Task<HttpResponseMessage> PostAsync(HttpClient client, string path, string handler, Dictionary<string, string> fields, string? formPage = null)
    {
        var page = await client.GetAsync(formPage ?? path);
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        var token = AntiforgeryField().Match(await page.Content.ReadAsStringAsync()).Groups[1].Value;
        Assert.NotEmpty(token);
        var form = new Dictionary<string, string>(fields) { ["_handler"] = handler, ["__RequestVerificationToken"] = token };
        return await client.PostAsync(path, new FormUrlEncodedContent(form));
    }

    public static Task<HttpResponseMessage> LoginAsync(HttpClient client, string login, string password) =>
        PostAsync(client, "/login", "login", new() { ["Input.Login"] = login, ["Input.Password"] = password });

    public static Task<HttpResponseMessage> ChangePasswordAsync(HttpClient client, string current, string @new) =>
        PostAsync(client, "/profile/password", "change-password", new() { ["Input.Current"] = current, ["Input.New"] = @new });

    /// <summary>The text of the page's error box.</summary>
    public static async Task<string> AlertAsync(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var match = Alert().Match(await response.Content.ReadAsStringAsync());
        Assert.True(match.Success, "The page shows no error.");
        return WebUtility.HtmlDecode(Regex.Replace(match.Groups[1].Value, "<[^>]+>", "")).Trim();
    }

    public static bool SetsSessionCookie(HttpResponseMessage response) =>
        response.Headers.TryGetValues("Set-Cookie", out var cookies) && cookies.Any(c => c.StartsWith("sutazai.session=", StringComparison.Ordinal) && !c.Contains("expires=Thu, 01 Jan 1970", StringComparison.OrdinalIgnoreCase));

    /// <summary>A browser-like client signed in through the sign-in form.</summary>
    public static async Task<HttpClient> SignedInAsync(TestApp app, TestUser user)
    {
        var browser = app.Client();
        var response = await LoginAsync(browser, user.Username, user.Password);
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.True(SetsSessionCookie(response));
        return browser;
    }
}

/// <summary>The UI's sign-in forms: the answers they give, and lockout counted together with the API.</summary>
public sealed class SignInFormTests(SqliteAppFixture fixture) : IClassFixture<SqliteAppFixture>
{
    private TestApp App => fixture.App;

    [Fact]
    public async Task LoginForm_LocksAfterFiveWrongPasswords_AndALockedAccountReadsLikeAnUnknownOne()
    {
        using var api = App.Client();
        var user = await Accounts.RegisterAsync(api);
        using var browser = App.Client();
        var unknown = await UiForms.LoginAsync(browser, "nobody" + Guid.NewGuid().ToString("N")[..6], "Wrong#Password1");
        Assert.Equal(IdentityApiTests.InvalidOrLocked, await UiForms.AlertAsync(unknown));
        for (var i = 1; i <= 5; i++)
        {
            var wrong = await UiForms.LoginAsync(browser, user.Username, "Wrong#Password1");
            Assert.Equal(IdentityApiTests.InvalidOrLocked, await UiForms.AlertAsync(wrong));
        }
        Assert.NotNull(await App.WithDbAsync(db => db.Users.AsNoTracking().Where(u => u.Id == user.Id).Select(u => u.LockoutEnd).SingleAsync()));

        var right = await UiForms.LoginAsync(browser, user.Username, user.Password);
        Assert.Equal(IdentityApiTests.InvalidOrLocked, await UiForms.AlertAsync(right));
        Assert.False(UiForms.SetsSessionCookie(right));
        var byApi = await api.PostAsJsonAsync("/api/v1/auth/login", new { login = user.Username, password = user.Password });
        Assert.Equal(HttpStatusCode.Unauthorized, byApi.StatusCode);
        Assert.Equal(IdentityApiTests.InvalidOrLocked, (await byApi.ReadJsonAsync()).GetProperty("detail").GetString());
    }

    [Fact]
    public async Task ChangePasswordForm_WrongCurrentPasswords_CountTowardTheLockout_WithTheApisFailures()
    {
        using var api = App.Client();
        var user = await Accounts.RegisterAsync(api);
        using var browser = await UiForms.SignedInAsync(App, user);
        for (var i = 1; i <= 2; i++)
        {
            var wrong = await UiForms.ChangePasswordAsync(browser, "Nope#Nope1x", "Another#Secret7");
            Assert.Equal("The current password is not correct.", await UiForms.AlertAsync(wrong));
            Assert.Equal(i, await App.WithDbAsync(db => db.Users.AsNoTracking().Where(u => u.Id == user.Id).Select(u => u.AccessFailedCount).SingleAsync()));
        }
        for (var i = 0; i < 3; i++)
            Assert.Equal(HttpStatusCode.Unauthorized, (await api.PostAsJsonAsync("/api/v1/auth/login", new { login = user.Username, password = "Wrong#Password1" })).StatusCode);
        var lockedUntil = await App.WithDbAsync(db => db.Users.AsNoTracking().Where(u => u.Id == user.Id).Select(u => u.LockoutEnd).SingleAsync());
        Assert.NotNull(lockedUntil);

        var right = await UiForms.ChangePasswordAsync(browser, user.Password, "Another#Secret7");
        Assert.Equal($"Too many wrong passwords: the account is locked until {lockedUntil.Value.UtcDateTime:yyyy-MM-dd HH:mm} UTC.", await UiForms.AlertAsync(right));
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.PostAsJsonAsync("/api/v1/auth/login", new { login = user.Username, password = "Another#Secret7" })).StatusCode);
    }

    [Fact]
    public async Task ChangePasswordForm_KeepsThisBrowserSignedIn_AndEndsEveryOtherSession()
    {
        using var api = App.Client();
        var user = await Accounts.RegisterAsync(api);
        var other = await Accounts.LoginAsync(api, user.Username);
        using var browser = await UiForms.SignedInAsync(App, user);
        using var otherBrowser = await UiForms.SignedInAsync(App, user);

        var changed = await UiForms.ChangePasswordAsync(browser, user.Password, "Another#Secret7");
        Assert.Equal(HttpStatusCode.OK, changed.StatusCode);
        Assert.Contains("data-testid=\"password-changed\"", await changed.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.True(UiForms.SetsSessionCookie(changed));

        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync("/profile/password")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await otherBrowser.GetAsync("/profile/password")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = other.RefreshToken })).StatusCode);
        await Accounts.LoginAsync(api, user.Username, "Another#Secret7");
    }

    [Fact]
    public async Task LogoutEverywhereForm_WithRevokeApiKeys_EndsTheKeys()
    {
        using var api = App.Client();
        var (user, tokens) = await Accounts.RegisterAndLoginAsync(api);
        using var jwt = App.Client(tokens.AccessToken);
        var key = (await (await jwt.PostAsJsonAsync("/api/v1/keys", new { name = "ci" })).ReadJsonAsync()).GetProperty("key").GetString()!;
        using var byKey = App.Client(key);
        using var browser = await UiForms.SignedInAsync(App, user);

        var kept = await UiForms.PostAsync(browser, "/account/logout-all", "", [], formPage: "/profile/password");
        Assert.Equal(HttpStatusCode.Redirect, kept.StatusCode);
        Assert.Equal("/login?message=signed-out", kept.Headers.Location?.OriginalString);
        Assert.Equal(HttpStatusCode.OK, (await byKey.GetAsync("/api/v1/users/me")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await jwt.GetAsync("/api/v1/users/me")).StatusCode);

        using var again = await UiForms.SignedInAsync(App, user);
        var revoked = await UiForms.PostAsync(again, "/account/logout-all", "", new() { ["revokeApiKeys"] = "true" }, formPage: "/profile/password");
        Assert.Equal(HttpStatusCode.Redirect, revoked.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await byKey.GetAsync("/api/v1/users/me")).StatusCode);
        Assert.Equal(0, await App.WithDbAsync(db => db.ApiKeys.CountAsync(k => k.UserId == user.Id && k.RevokedAt == null)));
        Assert.Equal(HttpStatusCode.Unauthorized, (await again.GetAsync("/profile/password")).StatusCode);
    }
}

/// <summary>The UI's form posts and /api/v1/auth spend one per-address budget (a test app of its own: 5 a minute).</summary>
public sealed class SignInFormRateLimitTests
{
    [Fact]
    public async Task FormPosts_ShareTheApisAuthLimit_AndShowingAFormIsFree()
    {
        await using var app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?> { ["Sutazai:RateLimits:AuthPerMinute"] = "5" });
        using var api = app.Client();
        using var browser = app.Client();
        var user = await Accounts.RegisterAsync(api);                                                                     // 1
        Assert.Equal(IdentityApiTests.InvalidOrLocked, await UiForms.AlertAsync(await UiForms.LoginAsync(browser, user.Username, "Wrong#Password1")));  // 2
        Assert.Equal(IdentityApiTests.InvalidOrLocked, await UiForms.AlertAsync(await UiForms.LoginAsync(browser, user.Username, "Wrong#Password1")));  // 3
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.PostAsJsonAsync("/api/v1/auth/login", new { login = user.Username, password = "Wrong#Password1" })).StatusCode); // 4
        var forgot = await UiForms.PostAsync(browser, "/forgot-password", "forgot", new() { ["Input.Email"] = user.Email });  // 5
        Assert.Equal(HttpStatusCode.OK, forgot.StatusCode);

        var limited = await UiForms.LoginAsync(browser, user.Username, user.Password);
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.InRange(int.Parse(limited.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture), 1, 60);
        Assert.StartsWith("Too many authentication requests from this address.", (await limited.ReadJsonAsync()).GetProperty("detail").GetString());
        Assert.False(UiForms.SetsSessionCookie(limited));
        Assert.Equal(HttpStatusCode.TooManyRequests, (await api.PostAsJsonAsync("/api/v1/auth/login", new { login = user.Username, password = user.Password })).StatusCode);
        var register = await UiForms.PostAsync(browser, "/register", "register", new()
        {
            ["Input.Username"] = Accounts.UniqueName(), ["Input.Email"] = $"{Guid.NewGuid():N}@example.test", ["Input.Password"] = Accounts.Password,
        });
        Assert.Equal(HttpStatusCode.TooManyRequests, register.StatusCode);
        Assert.Equal(1, await app.WithDbAsync(db => db.Users.CountAsync()));
        // The refused sign-in with the right password never reached the account.
        Assert.Null(await app.WithDbAsync(db => db.Users.AsNoTracking().Where(u => u.Id == user.Id).Select(u => u.LastLoginAt).SingleAsync()));
    }
}

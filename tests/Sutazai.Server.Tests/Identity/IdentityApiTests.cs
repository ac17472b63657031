using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Identity;

/// <summary>The identity rules, run against SQLite and PostgreSQL alike.</summary>
public abstract class IdentityApiTests(AppFixture fixture)
{
    protected TestApp App => fixture.App;

    [Fact]
    public void FixtureAdmin_IsTheFirstAccount_AndAdmin() => Assert.Equal("admin", fixture.Admin.Role);

    [Fact]
    public async Task Register_ReturnsProfile_AndIgnoresRoleAndFlagsInBody()
    {
        using var client = App.Client();
        var username = Accounts.UniqueName("reg");
        var response = await client.PostAsJsonAsync("/api/v1/auth/register", new
        {
            email = $"{username}@example.test", username, password = Accounts.Password, fullName = "Ada Lovelace",
            role = "admin", isSuperuser = true, isActive = false, isVerified = true,
        });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var body = await response.ReadJsonAsync();
        Assert.Equal(username, body.GetProperty("username").GetString());
        Assert.Equal($"{username}@example.test", body.GetProperty("email").GetString());
        Assert.Equal("Ada Lovelace", body.GetProperty("fullName").GetString());
        Assert.Equal("user", body.GetProperty("role").GetString());
        Assert.False(body.GetProperty("isVerified").GetBoolean());
        Assert.True(body.GetProperty("isActive").GetBoolean());
        Assert.True(body.TryGetProperty("createdAt", out _));
        var id = body.GetProperty("id").GetGuid();
        Assert.Equal($"/api/v1/users/{id}", response.Headers.Location?.OriginalString);

        var stored = await App.WithDbAsync(db => db.Users.AsNoTracking().SingleAsync(u => u.Id == id));
        Assert.Equal("user", stored.Role);
        Assert.True(stored.IsActive);
        Assert.False(stored.EmailConfirmed);
        Assert.NotEqual(Accounts.Password, stored.PasswordHash);
        Assert.StartsWith("AQAAAA", stored.PasswordHash); // Identity V3 hash format
    }

    [Fact]
    public async Task Register_InvalidFields_Returns422NamingEachField()
    {
        using var client = App.Client();
        var response = await client.PostAsJsonAsync("/api/v1/auth/register", new { email = "not-an-email", username = "a!", password = "short" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var errors = (await response.ReadJsonAsync()).GetProperty("errors");
        Assert.True(errors.TryGetProperty("email", out _));
        Assert.True(errors.TryGetProperty("username", out _));
        Assert.True(errors.TryGetProperty("password", out _));
    }

    [Fact]
    public async Task Register_MissingFields_Returns422()
    {
        using var client = App.Client();
        var response = await client.PostAsJsonAsync("/api/v1/auth/register", new { });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var errors = (await response.ReadJsonAsync()).GetProperty("errors");
        Assert.Equal("Email is required.", errors.GetProperty("email")[0].GetString());
        Assert.Equal("Username is required.", errors.GetProperty("username")[0].GetString());
        Assert.Equal("Password is required.", errors.GetProperty("password")[0].GetString());
    }

    [Theory]
    [InlineData("Sh0rt!a")]                 // 7 characters
    [InlineData("alllowercase1!")]          // no upper case
    [InlineData("ALLUPPERCASE1!")]          // no lower case
    [InlineData("NoDigitsHere!!")]          // no digit
    [InlineData("NoSymbols12345")]          // no symbol
    [InlineData("Password123!")]            // common word dressed up
    [InlineData("P@ssw0rd")]                // common, leetspeak
    [InlineData("Qwerty123!")]              // common keyboard walk
    [InlineData("Welcome1!")]               // common
    public async Task Register_WeakPassword_Returns422OnPassword(string password)
    {
        using var client = App.Client();
        var username = Accounts.UniqueName("pw");
        var response = await client.PostAsJsonAsync("/api/v1/auth/register", new { email = $"{username}@example.test", username, password });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var errors = (await response.ReadJsonAsync()).GetProperty("errors");
        Assert.True(errors.TryGetProperty("password", out var messages));
        Assert.True(messages.GetArrayLength() > 0);
        Assert.False(errors.TryGetProperty("username", out _));
        Assert.Equal(0, await App.WithDbAsync(db => db.Users.CountAsync(u => u.UserName == username)));
    }

    [Fact]
    public async Task Register_PasswordOf128Accepted_129Rejected()
    {
        using var client = App.Client();
        var ok = "Aa1!" + new string('x', 124);
        var tooLong = ok + "y";
        var u1 = Accounts.UniqueName("long");
        var u2 = Accounts.UniqueName("long");
        var accepted = await client.PostAsJsonAsync("/api/v1/auth/register", new { email = $"{u1}@example.test", username = u1, password = ok });
        Assert.Equal(HttpStatusCode.Created, accepted.StatusCode);
        var rejected = await client.PostAsJsonAsync("/api/v1/auth/register", new { email = $"{u2}@example.test", username = u2, password = tooLong });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, rejected.StatusCode);
        Assert.Contains("at most 128", (await rejected.ReadJsonAsync()).GetProperty("errors").GetProperty("password")[0].GetString());
    }

    [Theory]
    [InlineData("ab")]
    [InlineData("this-username-is-way-too-long-123")]
    [InlineData("has space")]
    [InlineData("emoji😀")]
    public async Task Register_BadUsername_Returns422OnUsername(string username)
    {
        using var client = App.Client();
        var response = await client.PostAsJsonAsync("/api/v1/auth/register", new { email = $"{Guid.NewGuid():N}@example.test", username, password = Accounts.Password });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var errors = (await response.ReadJsonAsync()).GetProperty("errors");
        Assert.True(errors.TryGetProperty("username", out _));
    }

    [Fact]
    public async Task Register_TakenEmailOrUsername_Returns409_CaseInsensitive()
    {
        using var client = App.Client();
        var user = await Accounts.RegisterAsync(client);
        var sameEmail = await client.PostAsJsonAsync("/api/v1/auth/register", new { email = user.Email.ToUpperInvariant(), username = Accounts.UniqueName(), password = Accounts.Password });
        Assert.Equal(HttpStatusCode.Conflict, sameEmail.StatusCode);
        Assert.Equal(409, (await sameEmail.ReadJsonAsync()).GetProperty("status").GetInt32());
        var sameName = await client.PostAsJsonAsync("/api/v1/auth/register", new { email = $"{Guid.NewGuid():N}@example.test", username = user.Username.ToUpperInvariant(), password = Accounts.Password });
        Assert.Equal(HttpStatusCode.Conflict, sameName.StatusCode);
    }

    [Fact]
    public async Task Register_ConcurrentSameEmail_ExactlyOneCreated()
    {
        var email = $"{Guid.NewGuid():N}@example.test";
        var statuses = new ConcurrentBag<HttpStatusCode>();
        await Parallel.ForEachAsync(Enumerable.Range(0, 8), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, ct) =>
        {
            using var client = App.Client();
            var response = await client.PostAsJsonAsync("/api/v1/auth/register", new { email, username = Accounts.UniqueName($"c{i}"), password = Accounts.Password }, ct);
            statuses.Add(response.StatusCode);
        });
        Assert.Equal(1, statuses.Count(s => s == HttpStatusCode.Created));
        Assert.Equal(7, statuses.Count(s => s == HttpStatusCode.Conflict));
        Assert.Equal(1, await App.WithDbAsync(db => db.Users.CountAsync(u => u.NormalizedEmail == email.ToUpperInvariant())));
    }

    [Fact]
    public async Task Register_MalformedJson_Returns400ProblemDetails()
    {
        using var client = App.Client();
        var response = await client.PostAsync("/api/v1/auth/register", new StringContent("{\"email\": ", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("not valid JSON", (await response.ReadJsonAsync()).GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Register_OversizedBody_Returns413()
    {
        using var client = App.Client();
        var huge = new string('a', 11 * 1024 * 1024);
        var response = await client.PostAsync("/api/v1/auth/register", new StringContent($"{{\"fullName\":\"{huge}\"}}", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal(413, (await response.ReadJsonAsync()).GetProperty("status").GetInt32());
    }

    [Fact]
    public async Task Login_ByUsernameOrEmail_ReturnsTokenPair()
    {
        using var client = App.Client();
        var user = await Accounts.RegisterAsync(client);
        foreach (var login in new[] { user.Username, user.Email, user.Email.ToUpperInvariant() })
        {
            var response = await client.PostAsJsonAsync("/api/v1/auth/login", new { login, password = user.Password });
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var body = await response.ReadJsonAsync();
            Assert.Equal("Bearer", body.GetProperty("tokenType").GetString());
            Assert.Equal(900, body.GetProperty("expiresIn").GetInt32());
            Assert.Equal(3, body.GetProperty("accessToken").GetString()!.Split('.').Length);
            Assert.True(body.GetProperty("refreshToken").GetString()!.Length >= 40);
        }
    }

    [Fact]
    public async Task Login_OAuth2PasswordForm_ReturnsTokenPair()
    {
        using var client = App.Client();
        var user = await Accounts.RegisterAsync(client);
        var response = await client.PostAsync("/api/v1/auth/login", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "password", ["username"] = user.Username, ["password"] = user.Password,
        }));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var tokens = Accounts.ReadTokens(await response.ReadJsonAsync());
        using var authed = App.Client(tokens.AccessToken);
        var me = await authed.GetAsync("/api/v1/users/me");
        Assert.Equal(HttpStatusCode.OK, me.StatusCode);
        Assert.Equal(user.Username, (await me.ReadJsonAsync()).GetProperty("username").GetString());
    }

    [Fact]
    public async Task Login_UnknownUserAndWrongPassword_GiveTheSame401()
    {
        using var client = App.Client();
        var user = await Accounts.RegisterAsync(client);
        var wrong = await client.PostAsJsonAsync("/api/v1/auth/login", new { login = user.Username, password = "Wrong#Password1" });
        var unknown = await client.PostAsJsonAsync("/api/v1/auth/login", new { login = "nobody" + Guid.NewGuid().ToString("N")[..6], password = "Wrong#Password1" });
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
        var a = await wrong.ReadJsonAsync();
        var b = await unknown.ReadJsonAsync();
        Assert.Equal(a.GetProperty("detail").GetString(), b.GetProperty("detail").GetString());
        Assert.Equal(a.GetProperty("title").GetString(), b.GetProperty("title").GetString());
    }

    [Fact]
    public async Task Login_FifthWrongPassword_LocksAccount_EvenForTheRightPassword_WithTheAnswerAnUnknownAccountGets()
    {
        using var client = App.Client();
        var user = await Accounts.RegisterAsync(client);
        var unknown = await client.PostAsJsonAsync("/api/v1/auth/login", new { login = "nobody" + Guid.NewGuid().ToString("N")[..6], password = "Wrong#Password1" });
        Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
        var unknownBody = await unknown.ReadJsonAsync();
        Assert.Equal(InvalidOrLocked, unknownBody.GetProperty("detail").GetString());
        for (var i = 1; i <= 4; i++)
        {
            var attempt = await client.PostAsJsonAsync("/api/v1/auth/login", new { login = user.Username, password = "Wrong#Password1" });
            Assert.Equal(HttpStatusCode.Unauthorized, attempt.StatusCode);
        }
        var fifth = await client.PostAsJsonAsync("/api/v1/auth/login", new { login = user.Username, password = "Wrong#Password1" });
        var lockedUntil = await App.WithDbAsync(db => db.Users.AsNoTracking().Where(u => u.Id == user.Id).Select(u => u.LockoutEnd).SingleAsync());
        Assert.NotNull(lockedUntil);
        Assert.InRange(lockedUntil.Value - DateTimeOffset.UtcNow, TimeSpan.FromMinutes(14), TimeSpan.FromMinutes(15.1));

        // Locked, with the wrong or the right password: the very answer an account that does not exist gets.
        var right = await client.PostAsJsonAsync("/api/v1/auth/login", new { login = user.Username, password = user.Password });
        foreach (var locked in new[] { fifth, right })
        {
            Assert.Equal(HttpStatusCode.Unauthorized, locked.StatusCode);
            Assert.False(locked.Headers.Contains("Retry-After"));
            var body = await locked.ReadJsonAsync();
            Assert.Equal(InvalidOrLocked, body.GetProperty("detail").GetString());
            Assert.Equal(unknownBody.GetProperty("title").GetString(), body.GetProperty("title").GetString());
            Assert.Equal(
                unknownBody.EnumerateObject().Select(p => p.Name).Where(n => n is not ("requestId" or "traceId")).Order(StringComparer.Ordinal),
                body.EnumerateObject().Select(p => p.Name).Where(n => n is not ("requestId" or "traceId")).Order(StringComparer.Ordinal));
        }
    }

    internal const string InvalidOrLocked = "Invalid username or password, or the account is locked for a while after too many failed attempts.";

    [Fact]
    public async Task Login_SuccessResetsFailureCount()
    {
        using var client = App.Client();
        var user = await Accounts.RegisterAsync(client);
        for (var i = 0; i < 4; i++)
            await client.PostAsJsonAsync("/api/v1/auth/login", new { login = user.Username, password = "Wrong#Password1" });
        await Accounts.LoginAsync(client, user.Username);
        for (var i = 0; i < 4; i++)
        {
            var attempt = await client.PostAsJsonAsync("/api/v1/auth/login", new { login = user.Username, password = "Wrong#Password1" });
            Assert.Equal(HttpStatusCode.Unauthorized, attempt.StatusCode);
        }
    }

    [Fact]
    public async Task Login_MissingFields_Returns422_AndWrongMediaType415()
    {
        using var client = App.Client();
        var missing = await client.PostAsJsonAsync("/api/v1/auth/login", new { login = "" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, missing.StatusCode);
        var errors = (await missing.ReadJsonAsync()).GetProperty("errors");
        Assert.True(errors.TryGetProperty("login", out _));
        Assert.True(errors.TryGetProperty("password", out _));
        var text = await client.PostAsync("/api/v1/auth/login", new StringContent("user:pass", System.Text.Encoding.UTF8, "text/plain"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, text.StatusCode);
    }

    [Fact]
    public async Task Refresh_RotatesTokens_AndReuseRevokesTheWholeFamily()
    {
        using var client = App.Client();
        var (_, first) = await Accounts.RegisterAndLoginAsync(client);
        var r1 = await client.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = first.RefreshToken });
        Assert.Equal(HttpStatusCode.OK, r1.StatusCode);
        var second = Accounts.ReadTokens(await r1.ReadJsonAsync());
        Assert.NotEqual(first.RefreshToken, second.RefreshToken);
        using (var authed = App.Client(second.AccessToken))
            Assert.Equal(HttpStatusCode.OK, (await authed.GetAsync("/api/v1/users/me")).StatusCode);

        var reuse = await client.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = first.RefreshToken });
        Assert.Equal(HttpStatusCode.Unauthorized, reuse.StatusCode);
        Assert.Contains("already used", (await reuse.ReadJsonAsync()).GetProperty("detail").GetString());

        var afterReuse = await client.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = second.RefreshToken });
        Assert.Equal(HttpStatusCode.Unauthorized, afterReuse.StatusCode);
    }

    [Fact]
    public async Task Refresh_StoresOnlyHashes_AndOtherFamiliesSurviveReuse()
    {
        using var client = App.Client();
        var user = await Accounts.RegisterAsync(client);
        var laptop = await Accounts.LoginAsync(client, user.Username);
        var phone = await Accounts.LoginAsync(client, user.Username);
        Assert.Equal(0, await App.WithDbAsync(db => db.RefreshTokens.CountAsync(t => t.TokenHash == laptop.RefreshToken)));
        Assert.Equal(2, await App.WithDbAsync(db => db.RefreshTokens.Where(t => t.UserId == user.Id).Select(t => t.FamilyId).Distinct().CountAsync()));

        await client.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = laptop.RefreshToken });
        await client.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = laptop.RefreshToken });
        var phoneRefresh = await client.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = phone.RefreshToken });
        Assert.Equal(HttpStatusCode.OK, phoneRefresh.StatusCode);
    }

    [Fact]
    public async Task Refresh_ConcurrentExchangeOfOneToken_OnlyOneSucceeds()
    {
        using var client = App.Client();
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(client);
        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
        {
            using var c = App.Client();
            return (await c.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = tokens.RefreshToken })).StatusCode;
        }));
        // Exactly one exchange wins; the others are reuse, which revokes the family, so nothing stays usable.
        Assert.True(results.Count(s => s == HttpStatusCode.OK) == 1, string.Join(",", results));
        Assert.Equal(3, results.Count(s => s == HttpStatusCode.Unauthorized));
        var hashOwner = await App.WithDbAsync(db => db.RefreshTokens.Where(t => t.RevokedReason == "reuse").Select(t => t.FamilyId).Distinct().ToListAsync());
        Assert.NotEmpty(hashOwner);
        foreach (var family in hashOwner)
            Assert.Equal(0, await App.WithDbAsync(db => db.RefreshTokens.CountAsync(t => t.FamilyId == family && t.RevokedAt == null)));
    }

    [Fact]
    public async Task Refresh_UnknownOrMissingToken_Returns401Or422()
    {
        using var client = App.Client();
        var unknown = await client.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = "not-a-token" });
        Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
        var missing = await client.PostAsJsonAsync("/api/v1/auth/refresh", new { });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, missing.StatusCode);
        Assert.True((await missing.ReadJsonAsync()).GetProperty("errors").TryGetProperty("refreshToken", out _));
    }

    [Fact]
    public async Task Logout_RevokesThatSessionsRefreshToken_Only()
    {
        using var client = App.Client();
        var user = await Accounts.RegisterAsync(client);
        var a = await Accounts.LoginAsync(client, user.Username);
        var b = await Accounts.LoginAsync(client, user.Username);
        using var authed = App.Client(a.AccessToken);
        var logout = await authed.PostAsJsonAsync("/api/v1/auth/logout", new { refreshToken = a.RefreshToken });
        Assert.Equal(HttpStatusCode.NoContent, logout.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = a.RefreshToken })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = b.RefreshToken })).StatusCode);
    }

    [Fact]
    public async Task Logout_WithoutBearer_Returns401ProblemDetails()
    {
        using var client = App.Client();
        var response = await client.PostAsJsonAsync("/api/v1/auth/logout", new { refreshToken = "x" });
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task LogoutAll_RevokesEverySession_AndInvalidatesAccessTokens()
    {
        using var client = App.Client();
        var user = await Accounts.RegisterAsync(client);
        var a = await Accounts.LoginAsync(client, user.Username);
        var b = await Accounts.LoginAsync(client, user.Username);
        using var authedA = App.Client(a.AccessToken);
        using var authedB = App.Client(b.AccessToken);
        Assert.Equal(HttpStatusCode.OK, (await authedB.GetAsync("/api/v1/users/me")).StatusCode);

        Assert.Equal(HttpStatusCode.NoContent, (await authedA.PostAsync("/api/v1/auth/logout/all", null)).StatusCode);

        Assert.Equal(HttpStatusCode.Unauthorized, (await authedA.GetAsync("/api/v1/users/me")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await authedB.GetAsync("/api/v1/users/me")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = a.RefreshToken })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = b.RefreshToken })).StatusCode);
        Assert.Equal(0, await App.WithDbAsync(db => db.RefreshTokens.CountAsync(t => t.UserId == user.Id && t.RevokedAt == null)));
        await Accounts.LoginAsync(client, user.Username);
    }

    [Fact]
    public async Task LogoutAll_KeepsApiKeys_UnlessAskedToRevokeThemToo()
    {
        using var anon = App.Client();
        var (user, first) = await Accounts.RegisterAndLoginAsync(anon);
        using var jwt = App.Client(first.AccessToken);
        var key = (await (await jwt.PostAsJsonAsync("/api/v1/keys", new { name = "ci" })).ReadJsonAsync()).GetProperty("key").GetString()!;
        using var byKey = App.Client(key);

        Assert.Equal(HttpStatusCode.NoContent, (await jwt.PostAsJsonAsync("/api/v1/auth/logout/all", new { revokeApiKeys = false })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await jwt.GetAsync("/api/v1/users/me")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await byKey.GetAsync("/api/v1/users/me")).StatusCode);

        var second = await Accounts.LoginAsync(anon, user.Username);
        using var jwt2 = App.Client(second.AccessToken);
        Assert.Equal(HttpStatusCode.NoContent, (await jwt2.PostAsJsonAsync("/api/v1/auth/logout/all", new { revokeApiKeys = true })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await byKey.GetAsync("/api/v1/users/me")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anon.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = second.RefreshToken })).StatusCode);
        Assert.Equal(0, await App.WithDbAsync(db => db.ApiKeys.CountAsync(k => k.UserId == user.Id && k.RevokedAt == null)));
        Assert.Equal(1, await App.WithDbAsync(db => db.ApiKeys.CountAsync(k => k.UserId == user.Id)));
    }

    [Fact]
    public async Task Me_GetAndPatchFullName()
    {
        using var anon = App.Client();
        var (user, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        using var client = App.Client(tokens.AccessToken);
        var patch = await client.PatchAsJsonAsync("/api/v1/users/me", new { fullName = "Grace Hopper", role = "admin" });
        Assert.Equal(HttpStatusCode.OK, patch.StatusCode);
        var me = await (await client.GetAsync("/api/v1/users/me")).ReadJsonAsync();
        Assert.Equal("Grace Hopper", me.GetProperty("fullName").GetString());
        Assert.Equal("user", me.GetProperty("role").GetString());
        Assert.Equal(user.Id, me.GetProperty("id").GetGuid());
        var tooLong = await client.PatchAsJsonAsync("/api/v1/users/me", new { fullName = new string('x', 201) });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, tooLong.StatusCode);
        Assert.True((await tooLong.ReadJsonAsync()).GetProperty("errors").TryGetProperty("fullName", out _));
    }

    [Fact]
    public async Task ChangePassword_RevokesOtherSessions_KeepsThisOneRefreshable()
    {
        using var anon = App.Client();
        var user = await Accounts.RegisterAsync(anon);
        var current = await Accounts.LoginAsync(anon, user.Username);
        var other = await Accounts.LoginAsync(anon, user.Username);
        using var client = App.Client(current.AccessToken);

        var wrong = await client.PostAsJsonAsync("/api/v1/users/me/password", new { currentPassword = "Nope#Nope1x", newPassword = "Another#Secret7" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, wrong.StatusCode);
        Assert.True((await wrong.ReadJsonAsync()).GetProperty("errors").TryGetProperty("currentPassword", out _));
        var weak = await client.PostAsJsonAsync("/api/v1/users/me/password", new { currentPassword = user.Password, newPassword = "weak" });
        Assert.True((await weak.ReadJsonAsync()).GetProperty("errors").TryGetProperty("newPassword", out _));

        var changed = await client.PostAsJsonAsync("/api/v1/users/me/password", new { currentPassword = user.Password, newPassword = "Another#Secret7" });
        Assert.Equal(HttpStatusCode.NoContent, changed.StatusCode);

        Assert.Equal(HttpStatusCode.Unauthorized, (await anon.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = other.RefreshToken })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/api/v1/users/me")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await anon.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = current.RefreshToken })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anon.PostAsJsonAsync("/api/v1/auth/login", new { login = user.Username, password = user.Password })).StatusCode);
        await Accounts.LoginAsync(anon, user.Username, "Another#Secret7");
    }

    [Fact]
    public async Task PasswordReset_UnknownEmail_Returns202AndSendsNothing()
    {
        using var client = App.Client();
        var email = $"ghost{Guid.NewGuid():N}@example.test";
        var response = await client.PostAsJsonAsync("/api/v1/auth/password-reset", new { email });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.Empty(App.MailsTo(email));
    }

    [Fact]
    public async Task PasswordReset_MailedToken_SetsPassword_OnceOnly_AndEndsSessions()
    {
        using var client = App.Client();
        var user = await Accounts.RegisterAsync(client);
        var session = await Accounts.LoginAsync(client, user.Username);
        var response = await client.PostAsJsonAsync("/api/v1/auth/password-reset", new { email = user.Email });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var token = Mail.Token(App.MailsTo(user.Email).Single(m => m.Contains("Reset your SutazAI password", StringComparison.Ordinal)), "password-reset/confirm");

        var weak = await client.PostAsJsonAsync("/api/v1/auth/password-reset/confirm", new { token, newPassword = "weak" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, weak.StatusCode);
        Assert.True((await weak.ReadJsonAsync()).GetProperty("errors").TryGetProperty("newPassword", out _));

        var confirm = await client.PostAsJsonAsync("/api/v1/auth/password-reset/confirm", new { token, newPassword = "Fresh#Start2026" });
        Assert.Equal(HttpStatusCode.NoContent, confirm.StatusCode);
        var again = await client.PostAsJsonAsync("/api/v1/auth/password-reset/confirm", new { token, newPassword = "Other#Start2027" });
        Assert.Equal(HttpStatusCode.BadRequest, again.StatusCode);

        Assert.Equal(HttpStatusCode.Unauthorized, (await client.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = session.RefreshToken })).StatusCode);
        await Accounts.LoginAsync(client, user.Username, "Fresh#Start2026");
    }

    [Fact]
    public async Task PasswordReset_RevokesEveryApiKeyAndRefreshToken()
    {
        using var client = App.Client();
        var user = await Accounts.RegisterAsync(client);
        var session = await Accounts.LoginAsync(client, user.Username);
        using var jwt = App.Client(session.AccessToken);
        var keys = new List<string>();
        foreach (var scopes in new[] { new[] { "inference" }, new[] { "chat", "agents" } })
            keys.Add((await (await jwt.PostAsJsonAsync("/api/v1/keys", new { name = "k", scopes })).ReadJsonAsync()).GetProperty("key").GetString()!);
        using var inferenceKey = App.Client(keys[0]);
        using var chatKey = App.Client(keys[1]);
        Assert.Equal(HttpStatusCode.OK, (await inferenceKey.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await chatKey.GetAsync("/api/v1/conversations")).StatusCode);

        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsJsonAsync("/api/v1/auth/password-reset", new { email = user.Email })).StatusCode);
        var token = Mail.Token(App.MailsTo(user.Email).Single(m => m.Contains("Reset your SutazAI password", StringComparison.Ordinal)), "password-reset/confirm");
        Assert.Equal(HttpStatusCode.NoContent, (await client.PostAsJsonAsync("/api/v1/auth/password-reset/confirm", new { token, newPassword = "Fresh#Start2026" })).StatusCode);

        Assert.Equal(HttpStatusCode.Unauthorized, (await inferenceKey.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await chatKey.GetAsync("/api/v1/conversations")).StatusCode);
        var refresh = await client.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = session.RefreshToken });
        Assert.Equal(HttpStatusCode.Unauthorized, refresh.StatusCode);
        Assert.Equal("The refresh token was revoked. Sign in again.", (await refresh.ReadJsonAsync()).GetProperty("detail").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, (await jwt.GetAsync("/api/v1/users/me")).StatusCode);
        Assert.Equal(2, await App.WithDbAsync(db => db.ApiKeys.CountAsync(k => k.UserId == user.Id && k.RevokedAt != null)));
        Assert.Equal(0, await App.WithDbAsync(db => db.ApiKeys.CountAsync(k => k.UserId == user.Id && k.RevokedAt == null)));
        Assert.Equal(0, await App.WithDbAsync(db => db.RefreshTokens.CountAsync(t => t.UserId == user.Id && t.RevokedAt == null)));
    }

    [Fact]
    public async Task ChangePassword_WrongCurrentPasswords_LockTheAccount_ForSignInAndChangeAlike()
    {
        using var anon = App.Client();
        var (user, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        using var client = App.Client(tokens.AccessToken);
        var hash = await App.WithDbAsync(db => db.Users.AsNoTracking().Where(u => u.Id == user.Id).Select(u => u.PasswordHash).SingleAsync());
        for (var i = 1; i <= 4; i++)
        {
            var wrong = await client.PostAsJsonAsync("/api/v1/users/me/password", new { currentPassword = "Nope#Nope1x", newPassword = "Another#Secret7" });
            Assert.Equal(HttpStatusCode.UnprocessableEntity, wrong.StatusCode);
            Assert.Equal(["The current password is not correct."], (await wrong.ReadJsonAsync()).GetProperty("errors").GetProperty("currentPassword").EnumerateArray().Select(e => e.GetString()));
            Assert.Equal(i, await App.WithDbAsync(db => db.Users.AsNoTracking().Where(u => u.Id == user.Id).Select(u => u.AccessFailedCount).SingleAsync()));
        }
        var fifth = await client.PostAsJsonAsync("/api/v1/users/me/password", new { currentPassword = "Nope#Nope1x", newPassword = "Another#Secret7" });
        Assert.Equal(HttpStatusCode.Forbidden, fifth.StatusCode);
        var body = await fifth.ReadJsonAsync();
        Assert.StartsWith("The account is locked after too many wrong passwords.", body.GetProperty("detail").GetString());
        var lockedUntil = await App.WithDbAsync(db => db.Users.AsNoTracking().Where(u => u.Id == user.Id).Select(u => u.LockoutEnd).SingleAsync());
        Assert.NotNull(lockedUntil);
        Assert.Equal(lockedUntil.Value.UtcDateTime, body.GetProperty("lockedUntil").GetDateTime(), TimeSpan.FromMilliseconds(1));

        // Locked: neither the right password at sign-in nor a change with the right current password goes through.
        var login = await anon.PostAsJsonAsync("/api/v1/auth/login", new { login = user.Username, password = user.Password });
        Assert.Equal(HttpStatusCode.Unauthorized, login.StatusCode);
        Assert.Equal(InvalidOrLocked, (await login.ReadJsonAsync()).GetProperty("detail").GetString());
        var right = await client.PostAsJsonAsync("/api/v1/users/me/password", new { currentPassword = user.Password, newPassword = "Another#Secret7" });
        Assert.Equal(HttpStatusCode.Forbidden, right.StatusCode);
        Assert.Equal(hash, await App.WithDbAsync(db => db.Users.AsNoTracking().Where(u => u.Id == user.Id).Select(u => u.PasswordHash).SingleAsync()));
        // The session itself stays: a lockout stops password guesses, not the signed-in owner.
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/v1/users/me")).StatusCode);
    }

    [Fact]
    public async Task PasswordReset_GarbageToken_Returns400()
    {
        using var client = App.Client();
        var response = await client.PostAsJsonAsync("/api/v1/auth/password-reset/confirm", new { token = "garbage", newPassword = "Fresh#Start2026" });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("invalid", (await response.ReadJsonAsync()).GetProperty("detail").GetString());
    }

    [Fact]
    public async Task VerifyEmail_WithMailedToken_MarksVerified()
    {
        using var anon = App.Client();
        var (user, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        var token = Mail.Token(App.MailsTo(user.Email).Single(m => m.Contains("Verify your SutazAI email", StringComparison.Ordinal)), "verify-email");
        Assert.Equal(HttpStatusCode.BadRequest, (await anon.PostAsJsonAsync("/api/v1/auth/verify-email", new { token = token[..^4] + "AAAA" })).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await anon.PostAsJsonAsync("/api/v1/auth/verify-email", new { token })).StatusCode);
        using var client = App.Client(tokens.AccessToken);
        Assert.True((await (await client.GetAsync("/api/v1/users/me")).ReadJsonAsync()).GetProperty("isVerified").GetBoolean());
        Assert.Equal(HttpStatusCode.Conflict, (await client.PostAsync("/api/v1/auth/verify-email/resend", null)).StatusCode);
    }

    [Fact]
    public async Task Admin_NonAdmin_Gets403_AndAnonymous401()
    {
        using var anon = App.Client();
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        using var client = App.Client(tokens.AccessToken);
        Assert.Equal(HttpStatusCode.Forbidden, (await client.GetAsync("/api/v1/admin/users")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await client.PatchAsJsonAsync($"/api/v1/admin/users/{Guid.NewGuid()}", new { role = "admin" })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anon.GetAsync("/api/v1/admin/users")).StatusCode);
    }

    [Fact]
    public async Task Admin_ListsUsers_AndPromotionTakesEffectWithTheSameToken()
    {
        using var anon = App.Client();
        var (user, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        using var admin = App.Client(fixture.AdminTokens.AccessToken);
        var list = await (await admin.GetAsync("/api/v1/admin/users?pageSize=200")).ReadJsonAsync();
        Assert.True(list.GetProperty("total").GetInt32() >= 2);
        Assert.Contains(list.GetProperty("items").EnumerateArray(), u => u.GetProperty("id").GetGuid() == user.Id);

        var promote = await admin.PatchAsJsonAsync($"/api/v1/admin/users/{user.Id}", new { role = "admin" });
        Assert.Equal(HttpStatusCode.OK, promote.StatusCode);
        Assert.Equal("admin", (await promote.ReadJsonAsync()).GetProperty("role").GetString());
        using var promoted = App.Client(tokens.AccessToken);
        Assert.Equal(HttpStatusCode.OK, (await promoted.GetAsync("/api/v1/admin/users")).StatusCode);

        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/v1/admin/users/{user.Id}", new { role = "user" })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await promoted.GetAsync("/api/v1/admin/users")).StatusCode);
    }

    [Fact]
    public async Task Admin_DeactivatingUser_KillsTokensAtOnce_AndBlocksLogin()
    {
        using var anon = App.Client();
        var (user, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        using var client = App.Client(tokens.AccessToken);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/v1/users/me")).StatusCode);

        using var admin = App.Client(fixture.AdminTokens.AccessToken);
        var off = await admin.PatchAsJsonAsync($"/api/v1/admin/users/{user.Id}", new { isActive = false });
        Assert.Equal(HttpStatusCode.OK, off.StatusCode);
        Assert.False((await off.ReadJsonAsync()).GetProperty("isActive").GetBoolean());

        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/api/v1/users/me")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anon.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = tokens.RefreshToken })).StatusCode);
        var login = await anon.PostAsJsonAsync("/api/v1/auth/login", new { login = user.Username, password = user.Password });
        Assert.Equal(HttpStatusCode.Forbidden, login.StatusCode);
        Assert.Contains("deactivated", (await login.ReadJsonAsync()).GetProperty("detail").GetString());

        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/v1/admin/users/{user.Id}", new { isActive = true })).StatusCode);
        await Accounts.LoginAsync(anon, user.Username);
    }

    [Fact]
    public async Task Admin_BadInput_UnknownUser404_BadRole422()
    {
        using var admin = App.Client(fixture.AdminTokens.AccessToken);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.PatchAsJsonAsync($"/api/v1/admin/users/{Guid.NewGuid()}", new { isActive = false })).StatusCode);
        var bad = await admin.PatchAsJsonAsync($"/api/v1/admin/users/{fixture.Admin.Id}", new { role = "superuser" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, bad.StatusCode);
        Assert.True((await bad.ReadJsonAsync()).GetProperty("errors").TryGetProperty("role", out _));
    }

    [Fact]
    public async Task Tokens_TamperedNoneExpiredOrWrongAudience_Are401()
    {
        using var anon = App.Client();
        var (user, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        var forged = JwtForge.From(App, tokens.AccessToken);
        foreach (var bad in new[]
        {
            JwtForge.FlipSignature(tokens.AccessToken),
            JwtForge.WithPayloadChange(tokens.AccessToken, "role", "admin"),
            JwtForge.AlgNone(tokens.AccessToken),
            forged.Sign(expires: DateTime.UtcNow.AddMinutes(-5)),
            forged.Sign(audience: "someone-else"),
            forged.Sign(issuer: "evil"),
            forged.Sign(key: new byte[64]),
        })
        {
            using var client = App.Client(bad);
            var response = await client.GetAsync("/api/v1/users/me");
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }
        using var ok = App.Client(forged.Sign());
        Assert.Equal(HttpStatusCode.OK, (await ok.GetAsync("/api/v1/users/me")).StatusCode);
        _ = user;
    }
}

public sealed class SqliteIdentityApiTests(SqliteAppFixture fixture) : IdentityApiTests(fixture), IClassFixture<SqliteAppFixture>;

public sealed class PostgresIdentityApiTests(PostgresAppFixture fixture) : IdentityApiTests(fixture), IClassFixture<PostgresAppFixture>;

using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Identity;

/// <summary>Per-user API keys: creation, listing, revocation, ownership, and authentication through the one validator.</summary>
public sealed class ApiKeysTests(SqliteAppFixture fixture) : IClassFixture<SqliteAppFixture>
{
    private TestApp App => fixture.App;

    private static string Sha256Hex(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    private static async Task<(Guid Id, string Key)> CreateKeyAsync(HttpClient client, string name = "laptop", DateTime? expiresAt = null, string[]? scopes = null)
    {
        var response = scopes is null
            ? await client.PostAsJsonAsync("/api/v1/keys", new { name, expiresAt })
            : await client.PostAsJsonAsync("/api/v1/keys", new { name, expiresAt, scopes });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var body = await response.ReadJsonAsync();
        return (body.GetProperty("id").GetGuid(), body.GetProperty("key").GetString()!);
    }

    /// <summary>The 403 of a key without the route's scope (or of any key where a sign-in is needed: <paramref name="scope"/> null).</summary>
    internal static async Task AssertInsufficientScopeAsync(HttpResponseMessage response, string? scope)
    {
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var body = await response.ReadJsonAsync();
        Assert.Equal("https://www.rfc-editor.org/rfc/rfc6750#section-3.1", body.GetProperty("type").GetString());
        Assert.Equal("Insufficient scope", body.GetProperty("title").GetString());
        Assert.Equal(403, body.GetProperty("status").GetInt32());
        Assert.Equal("insufficient_scope", body.GetProperty("code").GetString());
        if (scope is null)
        {
            Assert.False(body.TryGetProperty("scope", out _));
            Assert.Equal("API keys cannot manage API keys, the password or sessions: sign in (a JWT or the web UI) to do that.", body.GetProperty("detail").GetString());
            Assert.Equal("Bearer error=\"insufficient_scope\"", response.Headers.WwwAuthenticate.ToString());
        }
        else
        {
            Assert.Equal(scope, body.GetProperty("scope").GetString());
            var named = string.Join(" or ", scope.Split(' ').Select(s => $"'{s}'"));
            Assert.Equal($"This API key lacks the {named} scope this route needs.", body.GetProperty("detail").GetString());
            Assert.Equal($"Bearer error=\"insufficient_scope\", scope=\"{scope}\"", response.Headers.WwwAuthenticate.ToString());
        }
    }

    private Task<int> KeyCountAsync(Guid userId) => App.WithDbAsync(db => db.ApiKeys.CountAsync(k => k.UserId == userId));

    private async Task<(TestUser User, HttpClient Jwt)> NewUserAsync()
    {
        using var anonymous = App.Client();
        var (user, tokens) = await Accounts.RegisterAndLoginAsync(anonymous);
        return (user, App.Client(tokens.AccessToken));
    }

    [Fact]
    public async Task Create_ShowsTheKeyOnce_AndStoresOnlyItsHash()
    {
        var (user, jwt) = await NewUserAsync();
        using var _ = jwt;
        var expiresAt = DateTime.UtcNow.AddDays(30);
        var before = DateTime.UtcNow.AddSeconds(-1);
        var response = await jwt.PostAsJsonAsync("/api/v1/keys", new { name = "  ci runner  ", expiresAt });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var body = await response.ReadJsonAsync();
        var id = body.GetProperty("id").GetGuid();
        var key = body.GetProperty("key").GetString()!;
        Assert.Equal($"/api/v1/keys/{id}", response.Headers.Location?.OriginalString);
        Assert.Matches("^sk-sz-[A-Za-z0-9_-]{43}$", key);
        Assert.Equal(key[..12], body.GetProperty("prefix").GetString());
        Assert.Equal("ci runner", body.GetProperty("name").GetString());
        Assert.Equal(expiresAt, body.GetProperty("expiresAt").GetDateTime(), TimeSpan.FromMilliseconds(1));
        Assert.InRange(body.GetProperty("createdAt").GetDateTime(), before, DateTime.UtcNow.AddSeconds(1));
        Assert.Equal(["createdAt", "expiresAt", "id", "key", "name", "prefix", "scopes"], body.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(["inference", "chat", "knowledge"], body.GetProperty("scopes").EnumerateArray().Select(e => e.GetString()));

        var stored = await App.WithDbAsync(db => db.ApiKeys.AsNoTracking().SingleAsync(k => k.Id == id));
        Assert.Equal(user.Id, stored.UserId);
        Assert.Equal(Sha256Hex(key), stored.KeyHash);
        Assert.Equal(key[..12], stored.Prefix);
        Assert.Equal("ci runner", stored.Name);
        Assert.Null(stored.RevokedAt);
        Assert.Null(stored.LastUsedAt);
        Assert.Equal("inference chat knowledge", stored.Scopes);

        var list = await (await jwt.GetAsync("/api/v1/keys")).ReadJsonAsync();
        var item = Assert.Single(list.EnumerateArray());
        Assert.Equal(["createdAt", "expiresAt", "id", "lastUsedAt", "name", "prefix", "revokedAt", "scopes"], item.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(["inference", "chat", "knowledge"], item.GetProperty("scopes").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(id, item.GetProperty("id").GetGuid());
        Assert.Equal(key[..12], item.GetProperty("prefix").GetString());
        Assert.DoesNotContain(key, list.GetRawText());
    }

    [Theory]
    [InlineData("{}", "name", "Name is required.")]
    [InlineData("{\"name\":\"   \"}", "name", "Name is required.")]
    [InlineData("{\"name\":\"LONG\"}", "name", "Name must be at most 100 characters.")]
    [InlineData("{\"name\":\"old\",\"expiresAt\":\"2020-01-01T00:00:00Z\"}", "expiresAt", "expiresAt must be in the future.")]
    [InlineData("{\"name\":\"old\",\"scopes\":[\"chat\",\"everything\"]}", "scopes", "Unknown scope 'everything'. Scopes are inference, chat, knowledge, agents, admin.")]
    [InlineData("{\"name\":\"old\",\"scopes\":[\"Chat\"]}", "scopes", "Unknown scope 'Chat'. Scopes are inference, chat, knowledge, agents, admin.")]
    [InlineData("{\"name\":\"old\",\"scopes\":[]}", "scopes", "Give at least one scope, or omit scopes for the default ones.")]
    public async Task Create_InvalidInput_Returns422NamingTheField(string json, string field, string message)
    {
        var (_, jwt) = await NewUserAsync();
        using var _ = jwt;
        json = json.Replace("LONG", new string('k', 101), StringComparison.Ordinal);
        var response = await jwt.PostAsync("/api/v1/keys", new StringContent(json, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var errors = (await response.ReadJsonAsync()).GetProperty("errors");
        Assert.Equal([message], errors.GetProperty(field).EnumerateArray().Select(e => e.GetString()));
        Assert.Single(errors.EnumerateObject());
        Assert.Equal(0, await App.WithDbAsync(db => db.ApiKeys.CountAsync(k => k.Name == "old")));
    }

    [Fact]
    public async Task Key_AuthenticatesAsItsOwner_AndRecordsLastUseAtMostOncePerMinute()
    {
        var (user, jwt) = await NewUserAsync();
        using var _ = jwt;
        var (id, key) = await CreateKeyAsync(jwt);
        using var byKey = App.Client(key);
        var me = await byKey.GetAsync("/api/v1/users/me");
        Assert.Equal(HttpStatusCode.OK, me.StatusCode);
        var profile = await me.ReadJsonAsync();
        Assert.Equal(user.Id, profile.GetProperty("id").GetGuid());
        Assert.Equal(user.Username, profile.GetProperty("username").GetString());

        var firstUse = await App.WithDbAsync(db => db.ApiKeys.AsNoTracking().Where(k => k.Id == id).Select(k => k.LastUsedAt).SingleAsync());
        Assert.NotNull(firstUse);
        Assert.InRange(firstUse.Value, DateTime.UtcNow.AddMinutes(-1), DateTime.UtcNow.AddSeconds(1));
        Assert.Equal(HttpStatusCode.OK, (await byKey.GetAsync("/api/v1/users/me")).StatusCode);
        Assert.Equal(firstUse, await App.WithDbAsync(db => db.ApiKeys.AsNoTracking().Where(k => k.Id == id).Select(k => k.LastUsedAt).SingleAsync()));

        // After the interval the next request records the use again.
        var past = DateTime.UtcNow.AddMinutes(-5);
        await App.WithDbAsync(db => db.ApiKeys.Where(k => k.Id == id).ExecuteUpdateAsync(s => s.SetProperty(k => k.LastUsedAt, past)));
        Assert.Equal(HttpStatusCode.OK, (await byKey.GetAsync("/v1/models")).StatusCode);
        var later = await App.WithDbAsync(db => db.ApiKeys.AsNoTracking().Where(k => k.Id == id).Select(k => k.LastUsedAt).SingleAsync());
        Assert.True(later > past.AddMinutes(4), $"LastUsedAt stayed {later:O}");
    }

    [Fact]
    public async Task Revoke_EndsTheKeyAtOnce_AndListShowsRevokedAt()
    {
        var (_, jwt) = await NewUserAsync();
        using var _ = jwt;
        var (id, key) = await CreateKeyAsync(jwt);
        var (otherId, otherKey) = await CreateKeyAsync(jwt, "other");
        using var byKey = App.Client(key);
        Assert.Equal(HttpStatusCode.OK, (await byKey.GetAsync("/api/v1/users/me")).StatusCode);

        Assert.Equal(HttpStatusCode.NoContent, (await jwt.DeleteAsync($"/api/v1/keys/{id}")).StatusCode);
        var afterRevoke = await byKey.GetAsync("/api/v1/users/me");
        Assert.Equal(HttpStatusCode.Unauthorized, afterRevoke.StatusCode);
        Assert.Equal("application/problem+json", afterRevoke.Content.Headers.ContentType?.MediaType);

        var revokedAt = await App.WithDbAsync(db => db.ApiKeys.AsNoTracking().Where(k => k.Id == id).Select(k => k.RevokedAt).SingleAsync());
        Assert.NotNull(revokedAt);
        // Revoking again keeps the first time.
        Assert.Equal(HttpStatusCode.NoContent, (await jwt.DeleteAsync($"/api/v1/keys/{id}")).StatusCode);
        Assert.Equal(revokedAt, await App.WithDbAsync(db => db.ApiKeys.AsNoTracking().Where(k => k.Id == id).Select(k => k.RevokedAt).SingleAsync()));

        var list = (await (await jwt.GetAsync("/api/v1/keys")).ReadJsonAsync()).EnumerateArray().ToList();
        Assert.Equal(2, list.Count);
        Assert.Equal(revokedAt.Value, list.Single(k => k.GetProperty("id").GetGuid() == id).GetProperty("revokedAt").GetDateTime(), TimeSpan.FromMilliseconds(1));
        Assert.Equal(System.Text.Json.JsonValueKind.Null, list.Single(k => k.GetProperty("id").GetGuid() == otherId).GetProperty("revokedAt").ValueKind);

        // The other key is untouched.
        using var byOther = App.Client(otherKey);
        Assert.Equal(HttpStatusCode.OK, (await byOther.GetAsync("/api/v1/users/me")).StatusCode);
    }

    [Fact]
    public async Task AnotherUsersKey_Is404_AndNotListed()
    {
        var (_, alice) = await NewUserAsync();
        var (_, bob) = await NewUserAsync();
        using var a = alice;
        using var b = bob;
        var (aliceKeyId, aliceKey) = await CreateKeyAsync(alice);

        var response = await bob.DeleteAsync($"/api/v1/keys/{aliceKeyId}");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("No API key with that id.", (await response.ReadJsonAsync()).GetProperty("detail").GetString());
        Assert.Empty((await (await bob.GetAsync("/api/v1/keys")).ReadJsonAsync()).EnumerateArray());
        Assert.Null(await App.WithDbAsync(db => db.ApiKeys.AsNoTracking().Where(k => k.Id == aliceKeyId).Select(k => k.RevokedAt).SingleAsync()));
        using var byAliceKey = App.Client(aliceKey);
        Assert.Equal(HttpStatusCode.OK, (await byAliceKey.GetAsync("/api/v1/users/me")).StatusCode);
    }

    [Fact]
    public async Task DeactivatedUsersKey_Is401AtOnce_AndWorksAgainAfterReactivation()
    {
        var (user, jwt) = await NewUserAsync();
        using var _ = jwt;
        var (_, key) = await CreateKeyAsync(jwt);
        using var byKey = App.Client(key);
        using var admin = App.Client(fixture.AdminTokens.AccessToken);
        Assert.Equal(HttpStatusCode.OK, (await byKey.GetAsync("/api/v1/users/me")).StatusCode);

        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/v1/admin/users/{user.Id}", new { isActive = false })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await byKey.GetAsync("/api/v1/users/me")).StatusCode);

        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/v1/admin/users/{user.Id}", new { isActive = true })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await byKey.GetAsync("/api/v1/users/me")).StatusCode);
    }

    [Fact]
    public async Task ExpiredKey_Is401()
    {
        var (_, jwt) = await NewUserAsync();
        using var _ = jwt;
        var (id, key) = await CreateKeyAsync(jwt, expiresAt: DateTime.UtcNow.AddHours(1));
        using var byKey = App.Client(key);
        Assert.Equal(HttpStatusCode.OK, (await byKey.GetAsync("/api/v1/users/me")).StatusCode);

        var past = DateTime.UtcNow.AddSeconds(-1);
        await App.WithDbAsync(db => db.ApiKeys.Where(k => k.Id == id).ExecuteUpdateAsync(s => s.SetProperty(k => k.ExpiresAt, past)));
        Assert.Equal(HttpStatusCode.Unauthorized, (await byKey.GetAsync("/api/v1/users/me")).StatusCode);
    }

    [Fact]
    public async Task KeyRole_ComesFromTheDatabase_AndTheAdminScopeWorksOnlyWhileTheOwnerIsAdmin()
    {
        var (user, jwt) = await NewUserAsync();
        using var _ = jwt;
        var (_, defaultKey) = await CreateKeyAsync(jwt);
        using var byDefaultKey = App.Client(defaultKey);
        using var admin = App.Client(fixture.AdminTokens.AccessToken);
        Assert.Equal(HttpStatusCode.Forbidden, (await byDefaultKey.GetAsync("/api/v1/admin/users")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/v1/admin/users/{user.Id}", new { role = "admin" })).StatusCode);

        // Promoted: the same JWT may now grant admin; the old key still lacks the scope.
        await AssertInsufficientScopeAsync(await byDefaultKey.GetAsync("/api/v1/admin/users"), "admin");
        var (_, adminKey) = await CreateKeyAsync(jwt, "ops", scopes: ["admin"]);
        using var byAdminKey = App.Client(adminKey);
        Assert.Equal(HttpStatusCode.OK, (await byAdminKey.GetAsync("/api/v1/admin/users")).StatusCode);
        await AssertInsufficientScopeAsync(await byAdminKey.GetAsync("/api/v1/conversations"), "chat");

        // Demoted: the admin key stops opening admin routes at once (a plain 403: the role is missing, not only the scope).
        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/v1/admin/users/{user.Id}", new { role = "user" })).StatusCode);
        var demoted = await byAdminKey.GetAsync("/api/v1/admin/users");
        Assert.Equal(HttpStatusCode.Forbidden, demoted.StatusCode);
        Assert.False((await demoted.ReadJsonAsync()).TryGetProperty("code", out var code), code.ToString());
    }

    [Fact]
    public async Task DefaultKey_UsesInferenceChatAndKnowledge_ButNeverKeysPasswordOrSessions()
    {
        var (user, jwt) = await NewUserAsync();
        using var _ = jwt;
        var (id, key) = await CreateKeyAsync(jwt);
        using var byKey = App.Client(key);

        Assert.Equal(HttpStatusCode.OK, (await byKey.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await byKey.GetAsync("/api/v1/models")).StatusCode);
        var conversation = await byKey.PostAsJsonAsync("/api/v1/conversations", new { title = "by key" });
        Assert.Equal(HttpStatusCode.Created, conversation.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await byKey.GetAsync("/api/v1/conversations")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await byKey.GetAsync("/api/v1/documents")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await byKey.GetAsync("/api/v1/collections")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await byKey.GetAsync("/api/v1/users/me")).StatusCode);
        await AssertInsufficientScopeAsync(await byKey.GetAsync("/api/v1/agents"), "agents");
        await AssertInsufficientScopeAsync(await byKey.GetAsync("/api/v1/runs"), "agents");
        await AssertInsufficientScopeAsync(await byKey.GetAsync("/api/v1/memory"), "agents");

        // The key cannot mint a key that would outlive its own revocation, nor see, revoke, or change the password…
        await AssertInsufficientScopeAsync(await byKey.PostAsJsonAsync("/api/v1/keys", new { name = "escape hatch" }), null);
        await AssertInsufficientScopeAsync(await byKey.PostAsJsonAsync("/api/v1/keys", new { name = "escape hatch", scopes = new[] { "inference" } }), null);
        await AssertInsufficientScopeAsync(await byKey.GetAsync("/api/v1/keys"), null);
        await AssertInsufficientScopeAsync(await byKey.DeleteAsync($"/api/v1/keys/{id}"), null);
        await AssertInsufficientScopeAsync(await byKey.PostAsJsonAsync("/api/v1/users/me/password", new { currentPassword = user.Password, newPassword = "Taken#Over2026" }), null);
        await AssertInsufficientScopeAsync(await byKey.PostAsJsonAsync("/api/v1/auth/logout/all", new { revokeApiKeys = true }), null);
        Assert.Equal(1, await KeyCountAsync(user.Id));
        Assert.Null(await App.WithDbAsync(db => db.ApiKeys.AsNoTracking().Where(k => k.Id == id).Select(k => k.RevokedAt).SingleAsync()));
        using (var anon = App.Client())
            await Accounts.LoginAsync(anon, user.Username);

        // …so revoking it ends everything it could do.
        Assert.Equal(HttpStatusCode.NoContent, (await jwt.DeleteAsync($"/api/v1/keys/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await byKey.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(0, await App.WithDbAsync(db => db.ApiKeys.CountAsync(k => k.UserId == user.Id && k.RevokedAt == null)));
    }

    [Fact]
    public async Task InferenceOnlyKey_ReachesV1_ButNotConversationsOrKnowledge()
    {
        var (_, jwt) = await NewUserAsync();
        using var _ = jwt;
        var (_, key) = await CreateKeyAsync(jwt, "inference only", scopes: ["inference"]);
        using var byKey = App.Client(key);
        Assert.Equal(HttpStatusCode.OK, (await byKey.GetAsync("/v1/models")).StatusCode);
        await AssertInsufficientScopeAsync(await byKey.GetAsync("/api/v1/conversations"), "chat");
        await AssertInsufficientScopeAsync(await byKey.PostAsJsonAsync("/api/v1/conversations", new { title = "nope" }), "chat");
        await AssertInsufficientScopeAsync(await byKey.GetAsync("/api/v1/search?q=falcon"), "knowledge");
        await AssertInsufficientScopeAsync(await byKey.GetAsync("/api/v1/vectors"), "knowledge");
        await AssertInsufficientScopeAsync(await byKey.GetAsync("/api/v1/graph/entities"), "knowledge");
        Assert.Equal(0, await App.WithDbAsync(db => db.Conversations.CountAsync(c => c.Title == "nope")));
    }

    [Fact]
    public async Task ChatOnlyKey_OnV1_Gets403InOpenAIsShape()
    {
        var (_, jwt) = await NewUserAsync();
        using var _ = jwt;
        var (_, key) = await CreateKeyAsync(jwt, "chat only", scopes: ["chat"]);
        using var byKey = App.Client(key);
        var response = await byKey.GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        var error = (await response.ReadJsonAsync()).GetProperty("error");
        Assert.Equal("insufficient_scope", error.GetProperty("code").GetString());
        Assert.Equal("permission_error", error.GetProperty("type").GetString());
        Assert.Equal("This API key lacks the 'inference' scope this route needs.", error.GetProperty("message").GetString());
        Assert.Equal(HttpStatusCode.OK, (await byKey.GetAsync("/api/v1/conversations")).StatusCode);
    }

    [Fact]
    public async Task NonAdminAskingForTheAdminScope_Is403_AndStoresNoKey()
    {
        var (user, jwt) = await NewUserAsync();
        using var _ = jwt;
        var response = await jwt.PostAsJsonAsync("/api/v1/keys", new { name = "power", scopes = new[] { "inference", "admin" } });
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("Only an administrator can give a key the 'admin' scope.", (await response.ReadJsonAsync()).GetProperty("detail").GetString());
        Assert.Equal(0, await KeyCountAsync(user.Id));
    }

    [Fact]
    public async Task AdminKeyWithTheAdminScope_OpensAdminRoutes_AndTheDefaultOneDoesNot()
    {
        using var admin = App.Client(fixture.AdminTokens.AccessToken);
        var (_, adminKey) = await CreateKeyAsync(admin, "ops", scopes: ["admin", "agents"]);
        var (_, plainKey) = await CreateKeyAsync(admin, "plain");
        using var byAdminKey = App.Client(adminKey);
        using var byPlainKey = App.Client(plainKey);
        Assert.Equal(HttpStatusCode.OK, (await byAdminKey.GetAsync("/api/v1/admin/users")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await byAdminKey.GetAsync("/api/v1/admin/tools")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await byAdminKey.GetAsync("/api/v1/agents")).StatusCode);
        await AssertInsufficientScopeAsync(await byPlainKey.GetAsync("/api/v1/admin/users"), "admin");
        var listed = (await (await admin.GetAsync("/api/v1/keys")).ReadJsonAsync()).EnumerateArray()
            .ToDictionary(k => k.GetProperty("name").GetString()!, k => k.GetProperty("scopes").EnumerateArray().Select(e => e.GetString()!).ToArray());
        Assert.Equal(["agents", "admin"], listed["ops"]);
        Assert.Equal(["inference", "chat", "knowledge"], listed["plain"]);
    }

    [Fact]
    public async Task Sockets_NeedTheChatScope_ByQueryOrByAuthFrame()
    {
        var (_, jwt) = await NewUserAsync();
        using var _ = jwt;
        var (_, inferenceKey) = await CreateKeyAsync(jwt, "inference only", scopes: ["inference"]);
        var (_, chatKey) = await CreateKeyAsync(jwt, "chat", scopes: ["chat"]);

        foreach (var path in new[] { "/ws/chat", "/ws/jarvis" })
        {
            var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => Chat.ChatClient.ConnectAsync(App, inferenceKey, path));
            Assert.Contains("403", refused.Message, StringComparison.Ordinal);

            await using (var byQuery = await Chat.ChatClient.ConnectAsync(App, chatKey, path))
                Assert.True((await byQuery.ReadConnectionAsync()).GetProperty("authenticated").GetBoolean());

            await using var byFrame = await Chat.ChatClient.ConnectAsync(App, null, path);
            await byFrame.ReadConnectionAsync();
            await byFrame.SendAsync(new { type = "auth", token = inferenceKey });
            var error = (await byFrame.ReceiveAsync())!.Value;
            Assert.Equal("error", error.GetProperty("type").GetString());
            Assert.Equal("insufficient_scope", error.GetProperty("code").GetString());
            Assert.Equal("This API key lacks the 'chat' scope the sockets need.", error.GetProperty("message").GetString());
            Assert.Null(await byFrame.ReceiveAsync());
            Assert.Equal(System.Net.WebSockets.WebSocketCloseStatus.PolicyViolation, byFrame.Socket.CloseStatus);
        }
    }

    [Theory]
    [InlineData("sk-sz-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("sk-not-a-sutazai-key")]
    [InlineData(null)]
    public async Task UnknownOrMissingKey_Is401(string? key)
    {
        using var client = App.Client(key);
        var response = await client.GetAsync("/api/v1/keys");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(401, (await response.ReadJsonAsync()).GetProperty("status").GetInt32());
    }
}

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

    private static async Task<(Guid Id, string Key)> CreateKeyAsync(HttpClient client, string name = "laptop", DateTime? expiresAt = null)
    {
        var response = await client.PostAsJsonAsync("/api/v1/keys", new { name, expiresAt });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var body = await response.ReadJsonAsync();
        return (body.GetProperty("id").GetGuid(), body.GetProperty("key").GetString()!);
    }

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
        Assert.Equal(["createdAt", "expiresAt", "id", "key", "name", "prefix"], body.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));

        var stored = await App.WithDbAsync(db => db.ApiKeys.AsNoTracking().SingleAsync(k => k.Id == id));
        Assert.Equal(user.Id, stored.UserId);
        Assert.Equal(Sha256Hex(key), stored.KeyHash);
        Assert.Equal(key[..12], stored.Prefix);
        Assert.Equal("ci runner", stored.Name);
        Assert.Null(stored.RevokedAt);
        Assert.Null(stored.LastUsedAt);

        var list = await (await jwt.GetAsync("/api/v1/keys")).ReadJsonAsync();
        var item = Assert.Single(list.EnumerateArray());
        Assert.Equal(["createdAt", "expiresAt", "id", "lastUsedAt", "name", "prefix", "revokedAt"], item.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(id, item.GetProperty("id").GetGuid());
        Assert.Equal(key[..12], item.GetProperty("prefix").GetString());
        Assert.DoesNotContain(key, list.GetRawText());
    }

    [Theory]
    [InlineData("{}", "name", "Name is required.")]
    [InlineData("{\"name\":\"   \"}", "name", "Name is required.")]
    [InlineData("{\"name\":\"LONG\"}", "name", "Name must be at most 100 characters.")]
    [InlineData("{\"name\":\"old\",\"expiresAt\":\"2020-01-01T00:00:00Z\"}", "expiresAt", "expiresAt must be in the future.")]
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
        Assert.Equal(HttpStatusCode.OK, (await byKey.GetAsync("/api/v1/keys")).StatusCode);
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

        // The other key is untouched, and a key may manage keys too.
        using var byOther = App.Client(otherKey);
        Assert.Equal(HttpStatusCode.OK, (await byOther.GetAsync("/api/v1/users/me")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await byOther.DeleteAsync($"/api/v1/keys/{Guid.NewGuid()}")).StatusCode);
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
    public async Task KeyRole_ComesFromTheDatabase()
    {
        var (user, jwt) = await NewUserAsync();
        using var _ = jwt;
        var (_, key) = await CreateKeyAsync(jwt);
        using var byKey = App.Client(key);
        using var admin = App.Client(fixture.AdminTokens.AccessToken);
        Assert.Equal(HttpStatusCode.Forbidden, (await byKey.GetAsync("/api/v1/admin/users")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/v1/admin/users/{user.Id}", new { role = "admin" })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await byKey.GetAsync("/api/v1/admin/users")).StatusCode);
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

using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sutazai.Server.Tests.Identity;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Hosting;

/// <summary>Files at rest: a fresh data dir and everything secret in it are readable by the server's account only.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class FilesAtRestTests
{
    private const UnixFileMode Dir = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode File600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    [Fact]
    public async Task FreshDataDir_DatabaseKeysOutboxAndDocuments_AreOwnerOnly()
    {
        var root = Directory.CreateTempSubdirectory("sutazai-modes-").FullName;
        var dataDir = Path.Combine(root, "not-yet", "data");
        try
        {
            await using (var app = TestApp.Create(DbProvider.Sqlite, dataDir: dataDir))
            {
                using var client = app.Client();
                var (user, tokens) = await Accounts.RegisterAndLoginAsync(client);
                client.DefaultRequestHeaders.Authorization = new("Bearer", tokens.AccessToken);
                var document = await Documents.UploadIndexedAsync(client, "secret.txt", "The launch code is 0000.");
                var reset = await client.PostAsJsonAsync("/api/v1/auth/password-reset", new { email = user.Email });
                Assert.Equal(HttpStatusCode.Accepted, reset.StatusCode);
                Assert.NotEmpty(app.MailsTo(user.Email));

                Assert.Equal(Dir, File.GetUnixFileMode(dataDir));
                // The signing key and the data-protection key ring are in the database (owner-only below), not in files.
                Assert.False(Directory.Exists(Path.Combine(dataDir, "keys")));
                Assert.Equal(File600, File.GetUnixFileMode(Path.Combine(dataDir, "sutazai.db")));
                Assert.Equal(Dir, File.GetUnixFileMode(app.OutboxDir));
                var mails = Directory.GetFiles(app.OutboxDir, "*.eml");
                Assert.NotEmpty(mails);
                Assert.All(mails, mail => Assert.Equal(File600, File.GetUnixFileMode(mail)));
                Assert.Equal(Dir, File.GetUnixFileMode(Path.Combine(dataDir, "documents")));
                Assert.Equal(File600, File.GetUnixFileMode(Path.Combine(dataDir, "documents", document.ToString("N"))));
            }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}

/// <summary>An https public URL: HSTS on every answer and every cookie the server sets is Secure.</summary>
public sealed class HttpsPublicUrlTests
{
    [Fact]
    public async Task HttpsPublicUrl_SendsHsts_AndSecureSessionAndAntiforgeryCookies()
    {
        await using var app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?> { ["Sutazai:PublicUrl"] = "https://sutazai.example.test" });
        using var browser = app.CreateClient(new WebApplicationFactoryClientOptions { BaseAddress = new Uri("https://localhost"), AllowAutoRedirect = false });
        var user = await Accounts.RegisterAsync(browser);

        var health = await browser.GetAsync("/health");
        Assert.Equal("max-age=31536000; includeSubDomains", health.Headers.GetValues("Strict-Transport-Security").Single());

        var page = await browser.GetAsync("/login");
        var antiforgery = page.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith(".AspNetCore.Antiforgery.", StringComparison.Ordinal));
        Assert.Contains("; secure", antiforgery, StringComparison.OrdinalIgnoreCase);

        var login = await UiForms.LoginAsync(browser, user.Username, user.Password);
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        var session = login.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith("sutazai.session=", StringComparison.Ordinal));
        Assert.Contains("; secure", session, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("; httponly", session, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task HttpPublicUrl_SendsNoHsts_AndPlainCookies()
    {
        await using var app = TestApp.Create(DbProvider.Sqlite);
        using var browser = app.Client();
        var user = await Accounts.RegisterAsync(browser);

        var health = await browser.GetAsync("/health");
        Assert.False(health.Headers.Contains("Strict-Transport-Security"));
        var login = await UiForms.LoginAsync(browser, user.Username, user.Password);
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        var session = login.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith("sutazai.session=", StringComparison.Ordinal));
        Assert.DoesNotContain("; secure", session, StringComparison.OrdinalIgnoreCase);
    }
}

/// <summary>
/// <c>X-Forwarded-For</c> is believed only from <c>Sutazai:Http:KnownProxies</c>. Real sockets (Kestrel), so the
/// connection's address is the loopback address a proxy on the same host would have.
/// </summary>
public sealed class KnownProxiesTests
{
    private static async Task<List<HttpStatusCode>> SprayAsync(Uri address, string user, int attempts)
    {
        using var client = new HttpClient { BaseAddress = address };
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < attempts; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/auth/login") { Content = JsonContent.Create(new { login = user, password = "Wrong#Password1" }) };
            request.Headers.Add("X-Forwarded-For", $"203.0.113.{i + 1}");
            statuses.Add((await client.SendAsync(request)).StatusCode);
        }
        return statuses;
    }

    private static TestApp Create(string? knownProxies)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Sutazai:RateLimits:AuthPerMinute"] = "3",
        };
        if (knownProxies is not null) settings["Sutazai:Http:KnownProxies"] = knownProxies;
        return TestApp.Create(DbProvider.Sqlite, settings);
    }

    [Fact]
    public async Task WithoutKnownProxies_ForwardedForIsIgnored_SoSpoofingCannotDodgeTheAuthLimit()
    {
        await using var app = Create(knownProxies: null);
        var address = app.StartKestrel();
        var statuses = await SprayAsync(address, "nobody", 5);
        Assert.Equal([HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, HttpStatusCode.TooManyRequests, HttpStatusCode.TooManyRequests], statuses);
    }

    [Fact]
    public async Task FromAKnownProxy_ForwardedForIsTheClientAddress_ForLimitsAndSessions()
    {
        await using var app = Create(knownProxies: "127.0.0.1, ::1");
        var address = app.StartKestrel();
        // Five different clients behind the proxy: each is its own partition of the per-address limit.
        Assert.All(await SprayAsync(address, "nobody", 5), s => Assert.Equal(HttpStatusCode.Unauthorized, s));

        using var client = new HttpClient { BaseAddress = address };
        var user = await Accounts.RegisterAsync(client);
        using var login = new HttpRequestMessage(HttpMethod.Post, "/api/v1/auth/login") { Content = JsonContent.Create(new { login = user.Username, password = user.Password }) };
        login.Headers.Add("X-Forwarded-For", "198.51.100.7");
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(login)).StatusCode);
        var ip = await app.WithDbAsync(db => db.RefreshTokens.Where(t => t.UserId == user.Id).Select(t => t.CreatedByIp).SingleAsync());
        Assert.Equal("198.51.100.7", ip);
    }

    [Fact]
    public async Task NotFromAKnownProxy_TheSessionRecordsTheConnectionAddress()
    {
        await using var app = Create(knownProxies: "10.0.0.0/8");
        var address = app.StartKestrel();
        using var client = new HttpClient { BaseAddress = address };
        var user = await Accounts.RegisterAsync(client);
        using var login = new HttpRequestMessage(HttpMethod.Post, "/api/v1/auth/login") { Content = JsonContent.Create(new { login = user.Username, password = user.Password }) };
        login.Headers.Add("X-Forwarded-For", "198.51.100.7");
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(login)).StatusCode);
        var ip = await app.WithDbAsync(db => db.RefreshTokens.Where(t => t.UserId == user.Id).Select(t => t.CreatedByIp).SingleAsync());
        Assert.NotEqual("198.51.100.7", ip);
        Assert.True(IPAddress.IsLoopback(IPAddress.Parse(ip!)), ip);
    }

    [Fact]
    public void AMistypedProxy_StopsStartup_NamingTheSetting()
    {
        using var app = Create(knownProxies: "10.0.0.0/8, proxy.local");
        var error = Assert.Throws<OptionsValidationException>(() => app.Server);
        Assert.Contains("Sutazai:Http:KnownProxies: 'proxy.local' is neither an IP address nor a CIDR range", error.Message);
    }
}

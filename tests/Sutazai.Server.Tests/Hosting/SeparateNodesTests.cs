using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Sutazai.Server.Tests.Cli;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Hosting;

/// <summary>
/// Two server processes, each with its own data dir (as on two machines), sharing one PostgreSQL database: what one
/// node signs — an access token, the UI's antiforgery token and sign-in cookie — the other accepts, because the JWT
/// signing key and the data-protection key ring live in the database, and neither node keeps a key on its disk.
/// </summary>
public sealed partial class SeparateNodesTests : IAsyncLifetime
{
    private readonly string _database = "sutazai_nodes_" + Guid.NewGuid().ToString("N");
    private readonly List<string> _dataDirs = [];
    private readonly List<System.Diagnostics.Process> _processes = [];

    [GeneratedRegex("name=\"__RequestVerificationToken\" value=\"([^\"]+)\"")]
    private static partial Regex AntiforgeryField();

    public Task InitializeAsync()
    {
        TestApp.CreatePostgresDatabase(_database);
        return Task.CompletedTask;
    }

    private async Task<(SutazaiProcess Node, HttpClient Http)> StartNodeAsync(CookieContainer cookies)
    {
        var dataDir = Directory.CreateTempSubdirectory("sutazai-node-").FullName;
        _dataDirs.Add(dataDir);
        var node = new SutazaiProcess(dataDir);
        node.Environment["Sutazai__Database__Provider"] = "postgres";
        node.Environment["Sutazai__Database__ConnectionString"] = TestApp.PostgresConnectionString(_database);
        node.Environment["Sutazai__RateLimits__AuthPerMinute"] = "100000";
        var port = SutazaiProcess.FreePort();
        var http = new HttpClient(new HttpClientHandler { CookieContainer = cookies, AllowAutoRedirect = false })
        {
            BaseAddress = new Uri($"http://127.0.0.1:{port}"),
            Timeout = TimeSpan.FromSeconds(30),
        };
        _processes.Add(await node.ServeAsync(port, http));
        return (node, http);
    }

    [Fact]
    public async Task TokensAntiforgeryAndCookiesFromOneNode_WorkOnTheOther_AndNoKeyIsOnEitherDisk()
    {
        // One browser: cookies are per host, not per port, so both nodes see the same jar, as behind one gateway.
        var cookies = new CookieContainer();
        var (a, nodeA) = await StartNodeAsync(cookies);
        var (b, nodeB) = await StartNodeAsync(cookies);
        using var _ = nodeA;
        using var __ = nodeB;

        // An access token issued by A is accepted by B.
        var (user, tokens) = await Accounts.RegisterAndLoginAsync(nodeA);
        using (var me = new HttpRequestMessage(HttpMethod.Get, "/api/v1/users/me"))
        {
            me.Headers.Authorization = new AuthenticationHeaderValue("Bearer", tokens.AccessToken);
            var response = await nodeB.SendAsync(me);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(user.Username, (await response.ReadJsonAsync()).GetProperty("username").GetString());
        }
        // A refresh token from A is exchanged on B.
        var refreshed = await nodeB.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = tokens.RefreshToken });
        Assert.Equal(HttpStatusCode.OK, refreshed.StatusCode);

        // The sign-in form rendered by A (its antiforgery token and cookie) is posted to B, which signs the user in.
        var form = await nodeA.GetAsync("/login");
        Assert.Equal(HttpStatusCode.OK, form.StatusCode);
        var antiforgery = AntiforgeryField().Match(await form.Content.ReadAsStringAsync()).Groups[1].Value;
        Assert.NotEmpty(antiforgery);
        var signIn = await nodeB.PostAsync("/login", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["_handler"] = "login",
            ["__RequestVerificationToken"] = antiforgery,
            ["Input.Login"] = user.Username,
            ["Input.Password"] = user.Password,
        }));
        Assert.Equal(HttpStatusCode.Redirect, signIn.StatusCode);
        Assert.Contains(cookies.GetAllCookies(), c => c.Name == "sutazai.session");

        // The cookie B set opens the UI on A (without it, A redirects to /login).
        using (var page = new HttpRequestMessage(HttpMethod.Get, "/"))
        {
            page.Headers.Accept.ParseAdd("text/html");
            var response = await nodeA.SendAsync(page);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        foreach (var dataDir in _dataDirs)
            Assert.False(Directory.Exists(Path.Combine(dataDir, "keys")), $"{dataDir} holds a keys folder");
        Assert.NotEqual(a.DataDir, b.DataDir);
    }

    public Task DisposeAsync()
    {
        foreach (var process in _processes)
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.WaitForExit();
            process.Dispose();
        }
        TestApp.DropPostgresDatabase(_database);
        foreach (var dir in _dataDirs)
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
                // a killed node's files may still be closing
            }
        }
        return Task.CompletedTask;
    }
}

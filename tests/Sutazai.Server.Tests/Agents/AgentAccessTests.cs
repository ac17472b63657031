using Sutazai.Agents;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using LibGit2Sharp;
using Microsoft.EntityFrameworkCore;
using Sutazai.Server.Agents;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Agents;

/// <summary>
/// What an admin allows whom: coder repositories per user (<c>Sutazai:Agents:CoderRepositories</c>) and tool families
/// per role (<c>Sutazai:Agents:ToolFamiliesByRole:User</c>). A refused start stores no run and queues nothing.
/// </summary>
public sealed class AgentAccessTests : IAsyncLifetime
{
    private readonly AgentAppFixture _kit = new();
    private readonly string _alice = Accounts.UniqueName("alice");
    private readonly string _bob = Accounts.UniqueName("bob");
    private string _base = null!;
    private TestApp _app = null!;
    private HttpClient _admin = null!;
    private (HttpClient Client, Guid Id) _aliceClient;
    private (HttpClient Client, Guid Id) _bobClient;

    private string Repo(string name) => Path.Combine(_base, name);

    public async Task InitializeAsync()
    {
        _base = Directory.CreateTempSubdirectory("sutazai-access-").FullName;
        foreach (var name in new[] { "admins", "team", "public" }) Repository.Init(Repo(name));
        var settings = AgentAppFixture.Settings;
        settings["Sutazai:Agents:CoderRepositories"] = $"{Repo("admins")}; {Repo("team")}|{_alice.ToUpperInvariant()}, carol ;{Repo("public")}|*";
        settings["Sutazai:Agents:ToolFamiliesByRole:User"] = "testkit, files,git";
        _app = TestApp.Create(DbProvider.Sqlite, settings, services: _kit.Register);
        var (_, adminTokens) = await Accounts.RegisterAndLoginAsync(_app.Client());
        _admin = _app.Client(adminTokens.AccessToken);
        async Task<(HttpClient, Guid)> User(string name)
        {
            var user = await Accounts.RegisterAsync(_app.Client(), name);
            return (_app.Client((await Accounts.LoginAsync(_app.Client(), name)).AccessToken), user.Id);
        }
        _aliceClient = await User(_alice);
        _bobClient = await User(_bob);
    }

    public async Task DisposeAsync()
    {
        await _app.DisposeAsync();
        Directory.Delete(_base, recursive: true);
    }

    private Task<int> RunsOfAsync(Guid userId) => _app.WithDbAsync(db => db.AgentRuns.CountAsync(r => r.UserId == userId));

    private Task<int> QueuedTasksAsync() => _app.WithDbAsync(db => db.TaskQueue.CountAsync(t => t.Kind == AgentRunService.TaskKind));

    private string Answered(string name)
    {
        var key = $"access-{name}-{Guid.NewGuid():N}"[..32];
        _kit.Models.Script(key, ScriptedModels.Answer("nothing to do"));
        return key;
    }

    [Fact]
    public async Task CoderRepository_IsOpenedOnlyForTheUsersItsEntryNames()
    {
        const string refused = "The repository must be one an admin allowed for you (Sutazai:Agents:CoderRepositories).";
        async Task AssertRefused(HttpClient client, Guid userId, string repository)
        {
            var before = (await RunsOfAsync(userId), await QueuedTasksAsync());
            var response = await client.PostAsJsonAsync("/api/v1/agents/coder/runs", new { input = "fix it", options = new { repository } });
            Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
            var errors = (await response.ReadJsonAsync()).GetProperty("errors");
            Assert.Equal(["options.repository"], errors.EnumerateObject().Select(e => e.Name));
            Assert.Equal(refused, errors.GetProperty("options.repository")[0].GetString());
            Assert.Equal(before, (await RunsOfAsync(userId), await QueuedTasksAsync()));
        }

        await AssertRefused(_bobClient.Client, _bobClient.Id, Repo("team"));
        await AssertRefused(_bobClient.Client, _bobClient.Id, Repo("admins"));
        await AssertRefused(_aliceClient.Client, _aliceClient.Id, Repo("admins"));
        await AssertRefused(_bobClient.Client, _bobClient.Id, Repo("nowhere"));

        await Runs.StartAsync(_aliceClient.Client, "coder", Answered("alice-team"), new { repository = Repo("team") });
        await Runs.StartAsync(_aliceClient.Client, "coder", Answered("alice-public"), new { repository = Repo("public") + "/" });
        await Runs.StartAsync(_bobClient.Client, "coder", Answered("bob-public"), new { repository = Repo("public") });
        await Runs.StartAsync(_admin, "coder", Answered("admin-admins"), new { repository = Repo("admins") });
        await Runs.StartAsync(_admin, "coder", Answered("admin-team"), new { repository = Repo("team") });
        Assert.Equal((2, 1), (await RunsOfAsync(_aliceClient.Id), await RunsOfAsync(_bobClient.Id)));
    }

    [Fact]
    public async Task ToolFamilyTheRoleMayNotUse_IsRefusedAtStartWith403NamingIt()
    {
        var before = (await RunsOfAsync(_bobClient.Id), await QueuedTasksAsync());
        var engineer = await _bobClient.Client.PostAsJsonAsync("/api/v1/agents/engineer/runs", new { input = "build me a thing" });
        Assert.Equal(HttpStatusCode.Forbidden, engineer.StatusCode);
        Assert.Equal("application/problem+json", engineer.Content.Headers.ContentType!.MediaType);
        var problem = await engineer.ReadJsonAsync();
        Assert.Equal(403, problem.GetProperty("status").GetInt32());
        Assert.Equal("shell", problem.GetProperty("family").GetString());
        Assert.Equal("Your role (user) may not use the tool family 'shell', which the agent 'Engineer' needs (Sutazai:Agents:ToolFamiliesByRole:User).",
            problem.GetProperty("detail").GetString());

        var crew = await _bobClient.Client.PostAsJsonAsync("/api/v1/agents/crew/runs", new
        {
            input = "research",
            options = new { crew = new { process = "sequential", members = new[] { new { role = "searcher", goal = "search", tools = new[] { "testkit", "web" } } }, tasks = new[] { new { description = "look" } } } },
        });
        Assert.Equal(HttpStatusCode.Forbidden, crew.StatusCode);
        Assert.Equal("web", (await crew.ReadJsonAsync()).GetProperty("family").GetString());

        var custom = await Runs.CreateAgentAsync(_bobClient.Client, "shelly", ["testkit", "shell"]);
        var mine = await _bobClient.Client.PostAsJsonAsync($"/api/v1/agents/{custom}/runs", new { input = "x" });
        Assert.Equal(HttpStatusCode.Forbidden, mine.StatusCode);
        Assert.Equal("shell", (await mine.ReadJsonAsync()).GetProperty("family").GetString());
        Assert.Equal(before, (await RunsOfAsync(_bobClient.Id), await QueuedTasksAsync()));

        var allowed = await Runs.CreateAgentAsync(_bobClient.Client, "marker", ["testkit", "files"]);
        var done = await Runs.WaitForAsync(_bobClient.Client, await Runs.StartAsync(_bobClient.Client, allowed, Answered("bob-allowed")), "succeeded", "failed");
        Assert.Equal("succeeded", done.GetProperty("status").GetString());
        // Admins may use every family.
        Assert.Equal(HttpStatusCode.Accepted, (await _admin.PostAsJsonAsync("/api/v1/agents/engineer/runs", new { input = Answered("admin-engineer") })).StatusCode);
    }

    [Fact]
    public void CoderRepositoriesSetting_ParsesUsersPerEntry_AndNamesWhatIsWrong()
    {
        var entries = CoderRepository.ParseAll("/srv/a ; /srv/b|Alice, bob;/srv/c/|*");
        Assert.Equal(["/srv/a", "/srv/b", "/srv/c"], entries.Select(e => e.Path));
        Assert.Equal([false, false, true], entries.Select(e => e.Everyone));
        Assert.Equal([(false, false), (true, false), (true, true)], entries.Select(e => (e.Allows("alice", false), e.Allows("carol", false))));
        Assert.All(entries, e => Assert.True(e.Allows("anyone", isAdmin: true)));
        Assert.Empty(CoderRepository.Problems("/srv/a;/srv/b|alice,bob;/srv/c|*"));
        Assert.Equal(["'/srv/a,/srv/b': separate repositories with ';' (users of one repository with ',' after '|')."], CoderRepository.Problems("/srv/a,/srv/b"));
        Assert.Equal(["'relative/repo' is not an absolute path."], CoderRepository.Problems("relative/repo|alice"));
        Assert.Equal(["'/srv/a|x|y' has more than one '|'."], CoderRepository.Problems("/srv/a|x|y"));
    }

    [Fact]
    public void ToolFamiliesByRole_StarAllowsEveryFamily_AdminsAreNeverRestricted()
    {
        AgentAccess Access(string setting) => new(Microsoft.Extensions.Options.Options.Create(new AgentOptions { ToolFamiliesByRole = new() { User = setting } }));
        Assert.Null(Access("*").ForbiddenFamily("user", ["shell", "mcp"]));
        Assert.Equal("shell", Access("files, knowledge").ForbiddenFamily("user", ["Files", "shell", "mcp"]));
        Assert.Equal("files", Access("").ForbiddenFamily("user", ["files"]));
        Assert.Null(Access("").ForbiddenFamily("admin", ["shell", "mcp"]));
        Assert.Equal("Sutazai:Agents:ToolFamiliesByRole:User", AgentAccess.FamiliesSetting("user"));
    }
}

using System.IO.Compression;
using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Agents;
using Sutazai.Data;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Agents;

/// <summary>
/// A run executed by a worker on its own disk is listed and downloaded through an API node that never had its
/// workspace: with the database content store (PostgreSQL) the worker stores the finished workspace's zip and file
/// list where every node reads them.
/// </summary>
public sealed class RunArchiveTests : IAsyncLifetime
{
    private readonly ScriptedModels _models = new();
    private readonly TestKitTools _tools = new();
    private readonly List<TestApp> _apps = [];

    private static Dictionary<string, string?> Settings(string role, string? database)
    {
        var settings = AgentAppFixtureBase.Settings;
        settings["Sutazai:Role"] = role;
        settings["Sutazai:Tasks:Transport"] = "database";
        if (database is not null) settings["Sutazai:Database:ConnectionString"] = TestApp.PostgresConnectionString(database);
        return settings;
    }

    private void Register(IServiceCollection services)
    {
        services.AddSingleton<Sutazai.Inference.IModelProvider>(_models);
        services.AddSingleton<Sutazai.Agents.Tools.IToolProvider>(_tools);
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var app in Enumerable.Reverse(_apps)) await app.DisposeAsync();
    }

    [Fact]
    public async Task AWorkersFinishedWorkspace_IsListedAndZippedByAnApiNodeOnAnotherDisk()
    {
        var api = TestApp.Create(DbProvider.Postgres, Settings("api", null), services: Register);
        _apps.Add(api);
        var worker = TestApp.Create(DbProvider.Postgres, Settings("worker", api.PostgresDatabase), services: Register); // its own data dir
        _apps.Add(worker);
        Assert.NotEqual(api.DataDir, worker.DataDir);
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(api.Client());
        using var client = api.Client(tokens.AccessToken);
        _ = worker.Services.GetRequiredService<Sutazai.Server.Tasks.ITaskTransport>(); // the worker host is up

        var agent = await Runs.CreateAgentAsync(client, "archiver", ["testkit"]);
        var key = "archive-" + Guid.NewGuid().ToString("N");
        _models.Script(key, ScriptedModels.Call("write_marker", new { name = "report.txt" }), ScriptedModels.Answer("Written."));
        var runId = await Runs.StartAsync(client, agent, key);
        var waiting = await Runs.WaitForAsync(client, runId, "waiting_approval");
        var pending = Assert.Single(waiting.GetProperty("pendingApprovals").EnumerateArray());
        var decide = await client.PostAsJsonAsync($"/api/v1/runs/{runId}/approvals/{pending.GetProperty("id").GetGuid()}", new { approve = true });
        Assert.Equal(HttpStatusCode.OK, decide.StatusCode);
        var done = await Runs.WaitForAsync(client, runId, "succeeded", "failed");
        Assert.Equal("succeeded", done.GetProperty("status").GetString());

        // The workspace is on the worker's disk only.
        Assert.True(File.Exists(Path.Combine(worker.DataDir, "agents", "runs", runId.ToString("N"), "report.txt")));
        Assert.False(Directory.Exists(Path.Combine(api.DataDir, "agents", "runs", runId.ToString("N"))));

        // The API node lists it from the stored file list, in the run and on its own route.
        var artifact = Assert.Single(done.GetProperty("artifacts").EnumerateArray());
        Assert.Equal("report.txt", artifact.GetProperty("path").GetString());
        Assert.Equal(8, artifact.GetProperty("size").GetInt64());
        var listed = await (await client.GetAsync($"/api/v1/runs/{runId}/artifacts")).ReadJsonAsync();
        Assert.Equal("report.txt", Assert.Single(listed.EnumerateArray()).GetProperty("path").GetString());

        // And serves the stored zip.
        var zip = await client.GetAsync($"/api/v1/runs/{runId}/artifacts/workspace.zip");
        Assert.Equal(HttpStatusCode.OK, zip.StatusCode);
        Assert.Equal("application/zip", zip.Content.Headers.ContentType?.MediaType);
        using var archive = new ZipArchive(new MemoryStream(await zip.Content.ReadAsByteArrayAsync()));
        var entry = Assert.Single(archive.Entries);
        Assert.Equal("report.txt", entry.FullName);
        using var reader = new StreamReader(entry.Open());
        Assert.Equal("written\n", await reader.ReadToEndAsync());

        // Another user gets 404 for both, never the files.
        var (_, other) = await Accounts.RegisterAndLoginAsync(api.Client());
        using var stranger = api.Client(other.AccessToken);
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/api/v1/runs/{runId}/artifacts/workspace.zip")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/api/v1/runs/{runId}/artifacts")).StatusCode);
        Assert.NotNull(await api.Services.GetRequiredService<IContentStore>().OpenAsync(RunArchive.ZipKey(runId), CancellationToken.None));
    }
}

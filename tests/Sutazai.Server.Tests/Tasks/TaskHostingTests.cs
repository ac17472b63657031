using System.Net;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Tasks;

/// <summary>The task admin API's guard and the server roles.</summary>
public sealed class TaskHostingTests(SqliteAppFixture fixture) : IClassFixture<SqliteAppFixture>
{
    [Fact]
    public async Task AdminTasksApi_NonAdminGets403_AnonymousGets401()
    {
        using var anonymous = fixture.App.Client();
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(anonymous);
        using var user = fixture.App.Client(tokens.AccessToken);
        foreach (var (method, url) in new[]
        {
            (HttpMethod.Get, "/api/v1/admin/tasks"),
            (HttpMethod.Get, "/api/v1/admin/tasks/dead"),
            (HttpMethod.Post, $"/api/v1/admin/tasks/dead/{Guid.NewGuid()}/requeue"),
            (HttpMethod.Delete, $"/api/v1/admin/tasks/dead/{Guid.NewGuid()}"),
        })
        {
            Assert.Equal(HttpStatusCode.Forbidden, (await user.SendAsync(new HttpRequestMessage(method, url))).StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.SendAsync(new HttpRequestMessage(method, url))).StatusCode);
        }
    }

    [Fact]
    public async Task AdminTasksApi_CountsEveryStatus_AndValidatesTheLimit()
    {
        using var admin = fixture.App.Client(fixture.AdminTokens.AccessToken);
        var stats = await (await admin.GetAsync("/api/v1/admin/tasks")).ReadJsonAsync();
        Assert.Equal("database", stats.GetProperty("transport").GetString());
        Assert.Equal(["dead", "done", "leased", "queued"], stats.GetProperty("counts").EnumerateObject().Select(p => p.Name).Order());

        var invalid = await admin.GetAsync("/api/v1/admin/tasks/dead?limit=0");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, invalid.StatusCode);
        Assert.Equal("limit must be between 1 and 500.", (await invalid.ReadJsonAsync()).GetProperty("errors").GetProperty("limit")[0].GetString());
    }

    [Fact]
    public async Task WorkerRole_MapsNoApiRoutes_OnlyHealthAndMetrics()
    {
        await using var api = TestApp.Create(DbProvider.Sqlite);
        using (var client = api.Client()) Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/ready")).StatusCode);
        await using var worker = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?> { ["Sutazai:Role"] = "worker" }, dataDir: api.DataDir);
        using var http = worker.Client();

        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/api/v1/conversations")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/api/v1/admin/tasks")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.PostAsync("/api/v1/auth/login", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/openapi/v1.json")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health/ready")).StatusCode);
        var metrics = await http.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
    }

    [Fact]
    public async Task WorkerRole_NeverMigrates_AndStartsOnceAnApiNodeHas()
    {
        var dataDir = Directory.CreateTempSubdirectory("sutazai-test-").FullName;
        try
        {
            await using var worker = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?> { ["Sutazai:Role"] = "worker" }, dataDir: dataDir);
            var starting = Task.Run(() => worker.Client());
            await Task.Delay(3000);
            Assert.False(starting.IsCompleted, "the worker started on an unmigrated database");
            // Read-only, and only when the file exists: the check itself must not create the database.
            if (File.Exists(Path.Combine(dataDir, "sutazai.db"))) Assert.False(await HasTableAsync(dataDir, "task_queue"));

            await using var api = TestApp.Create(DbProvider.Sqlite, dataDir: dataDir);
            api.Client().Dispose();
            Assert.True(await HasTableAsync(dataDir, "task_queue"));
            using var client = await starting.WaitAsync(TimeSpan.FromSeconds(15));
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/ready")).StatusCode);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Directory.Delete(dataDir, recursive: true);
        }
    }

    [Fact]
    public void UnknownRole_StopsStartUp_NamingTheSetting()
    {
        using var app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?> { ["Sutazai:Role"] = "scheduler" });
        var error = Assert.Throws<OptionsValidationException>(() => app.Server);
        Assert.Contains("Sutazai:Role must be 'all', 'api' or 'worker'.", error.Message);
    }

    private static async Task<bool> HasTableAsync(string dataDir, string table)
    {
        await using var connection = new SqliteConnection($"Data Source={Path.Combine(dataDir, "sutazai.db")};Mode=ReadOnly;Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $name";
        command.Parameters.AddWithValue("$name", table);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture) == 1;
    }
}

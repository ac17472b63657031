using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Inference.Gguf;
using Sutazai.Server.Configuration;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Inference;

public sealed class ModelManagementTests
{
    private static Dictionary<string, string?> NoOllama(string? hfBase = null) => new()
    {
        ["Sutazai:Inference:Ollama:AutoDetect"] = "false",
        ["Sutazai:Inference:Pull:HuggingFaceBaseUrl"] = hfBase ?? "https://huggingface.co",
    };

    private static async Task<(TestApp App, HttpClient Admin, HttpClient User)> StartAsync(string? hfBase = null)
    {
        var app = TestApp.Create(DbProvider.Sqlite, NoOllama(hfBase));
        using var anon = app.Client();
        var admin = await Accounts.RegisterAsync(anon);
        var user = await Accounts.RegisterAsync(anon);
        return (app, app.Client((await Accounts.LoginAsync(anon, admin.Username)).AccessToken), app.Client((await Accounts.LoginAsync(anon, user.Username)).AccessToken));
    }

    private static async Task<System.Text.Json.JsonElement> WaitForPullAsync(HttpClient admin, string id)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var status = await (await admin.GetAsync($"/api/v1/models/pulls/{id}")).ReadJsonAsync();
            var state = status.GetProperty("status").GetString();
            if (state is "completed" or "failed" || DateTime.UtcNow > deadline) return status;
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task NoModel_GenerateReturns503ExplainingHowToGetOne_AndReadyIsDegraded()
    {
        var (app, admin, _) = await StartAsync();
        await using var _app = app;
        var response = await admin.PostAsJsonAsync("/api/v1/generate", new { prompt = "hello" });
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var detail = (await response.ReadJsonAsync()).GetProperty("detail").GetString()!;
        Assert.Contains("POST /api/v1/models/pull", detail);
        Assert.Contains("Ollama", detail);

        var ready = await admin.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        var body = await ready.ReadJsonAsync();
        Assert.Equal("degraded", body.GetProperty("checks").GetProperty("inference").GetProperty("status").GetString());
        var models = await (await admin.GetAsync("/api/v1/models")).ReadJsonAsync();
        Assert.Equal(0, models.GetProperty("models").GetArrayLength());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, models.GetProperty("defaultModel").ValueKind);
    }

    [Fact]
    public async Task PullFromUrl_DownloadsVerifiesAndListsTheModel_WithSseProgress()
    {
        await using var files = await ModelFileServer.StartAsync();
        var source = files.Put("models/tiny-pulled.gguf");
        var (app, admin, user) = await StartAsync();
        await using var _app = app;

        Assert.Equal(HttpStatusCode.Forbidden, (await user.PostAsJsonAsync("/api/v1/models/pull", new { source = $"{files.BaseUrl}/models/tiny-pulled.gguf" })).StatusCode);

        var start = await admin.PostAsJsonAsync("/api/v1/models/pull", new { source = $"{files.BaseUrl}/models/tiny-pulled.gguf" });
        Assert.Equal(HttpStatusCode.Accepted, start.StatusCode);
        var id = (await start.ReadJsonAsync()).GetProperty("id").GetString()!;

        using var stream = await admin.SendAsync(Sse.Get($"/api/v1/models/pulls/{id}"), HttpCompletionOption.ResponseHeadersRead);
        var events = await Sse.ReadAllAsync(stream);
        var last = events[^1];
        Assert.Equal("completed", last.Event);
        Assert.Equal(new FileInfo(source).Length, last.Data.GetProperty("bytes").GetInt64());
        Assert.Equal("tiny-pulled", last.Data.GetProperty("modelId").GetString());

        var status = await WaitForPullAsync(admin, id);
        Assert.Equal("completed", status.GetProperty("status").GetString());
        var installed = Path.Combine(app.DataDir, "models", "tiny-pulled.gguf");
        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(installed));
        Assert.Empty(Directory.GetFiles(Path.Combine(app.DataDir, "models", ".partial")));

        var models = await (await admin.GetAsync("/api/v1/models")).ReadJsonAsync();
        Assert.Contains(models.GetProperty("models").EnumerateArray(), m => m.GetProperty("id").GetString() == "tiny-pulled");
        var reply = await (await admin.PostAsJsonAsync("/api/v1/generate", new { model = "tiny-pulled", prompt = "Once", options = new { temperature = 0 } })).ReadJsonAsync();
        Assert.Equal(DeterministicModelSpec.DefaultExpectations.OnceCompletion, reply.GetProperty("text").GetString());
    }

    [Fact]
    public async Task PullHuggingFaceReference_ResolvesAgainstTheConfiguredHub()
    {
        await using var files = await ModelFileServer.StartAsync();
        files.Put("acme/tiny-GGUF/resolve/main/tiny-hf.gguf");
        var (app, admin, _) = await StartAsync(files.BaseUrl);
        await using var _app = app;
        var start = await admin.PostAsJsonAsync("/api/v1/models/pull", new { source = "hf:acme/tiny-GGUF/tiny-hf.gguf" });
        Assert.Equal(HttpStatusCode.Accepted, start.StatusCode);
        var status = await WaitForPullAsync(admin, (await start.ReadJsonAsync()).GetProperty("id").GetString()!);
        Assert.Equal("completed", status.GetProperty("status").GetString());
        Assert.True(File.Exists(Path.Combine(app.DataDir, "models", "tiny-hf.gguf")));
    }

    [Fact]
    public async Task PullFromAGatedRepository_NeedsTheToken_WhichNeverReachesTheCdn()
    {
        await using var files = await ModelFileServer.StartAsync();
        files.Put("acme/gated-GGUF/resolve/main/gated.gguf");
        files.Gate("acme/gated-GGUF/", "hf_gate_secret");

        var (without, admin, _) = await StartAsync(files.BaseUrl);
        await using (without)
        {
            var start = await admin.PostAsJsonAsync("/api/v1/models/pull", new { source = "hf:acme/gated-GGUF/gated.gguf" });
            var failed = await WaitForPullAsync(admin, (await start.ReadJsonAsync()).GetProperty("id").GetString()!);
            Assert.Equal("failed", failed.GetProperty("status").GetString());
            Assert.EndsWith("failed: HTTP 401 (Unauthorized). The file needs an access token (a gated or private repository): set HF_TOKEN or Sutazai:Inference:Pull:HuggingFaceToken.",
                failed.GetProperty("error").GetString());
            Assert.False(File.Exists(Path.Combine(without.DataDir, "models", "gated.gguf")));
        }

        var settings = NoOllama(files.BaseUrl);
        settings["Sutazai:Inference:Pull:HuggingFaceToken"] = "hf_gate_secret";
        await using var app = TestApp.Create(DbProvider.Sqlite, settings);
        using var anon = app.Client();
        using var withToken = app.Client((await Accounts.LoginAsync(anon, (await Accounts.RegisterAsync(anon)).Username)).AccessToken);
        var pull = await withToken.PostAsJsonAsync("/api/v1/models/pull", new { source = "hf:acme/gated-GGUF/gated.gguf" });
        var done = await WaitForPullAsync(withToken, (await pull.ReadJsonAsync()).GetProperty("id").GetString()!);
        Assert.True(done.GetProperty("status").GetString() == "completed", done.ToString());
        Assert.True(File.Exists(Path.Combine(app.DataDir, "models", "gated.gguf")));
        Assert.Equal(new[] { null, "Bearer hf_gate_secret" }, files.GatedAuthorizations.ToArray());
        Assert.NotEmpty(files.CdnAuthorizations);
        Assert.All(files.CdnAuthorizations, Assert.Null);
    }

    [Fact]
    public async Task PullOfANonGgufFile_FailsAndLeavesNothing()
    {
        await using var files = await ModelFileServer.StartAsync();
        files.Put("fake.gguf", "<html>not a model</html>"u8.ToArray());
        var (app, admin, _) = await StartAsync();
        await using var _app = app;
        var start = await admin.PostAsJsonAsync("/api/v1/models/pull", new { source = $"{files.BaseUrl}/fake.gguf" });
        var status = await WaitForPullAsync(admin, (await start.ReadJsonAsync()).GetProperty("id").GetString()!);
        Assert.Equal("failed", status.GetProperty("status").GetString());
        Assert.Contains("GGUF", status.GetProperty("error").GetString(), StringComparison.OrdinalIgnoreCase);
        Assert.False(File.Exists(Path.Combine(app.DataDir, "models", "fake.gguf")));
        var partial = Path.Combine(app.DataDir, "models", ".partial");
        Assert.True(!Directory.Exists(partial) || Directory.GetFiles(partial).Length == 0);
    }

    [Theory]
    [InlineData("")]
    [InlineData("file:///etc/passwd")]
    [InlineData("hf:only-owner")]
    [InlineData("ftp://example.com/x.gguf")]
    public async Task PullWithABadSource_Returns422(string source)
    {
        var (app, admin, _) = await StartAsync();
        await using var _app = app;
        var response = await admin.PostAsJsonAsync("/api/v1/models/pull", new { source });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.True((await response.ReadJsonAsync()).GetProperty("errors").TryGetProperty("source", out _));
    }

    [Fact]
    public async Task DeleteModel_AdminOnly_RemovesTheFile()
    {
        var (app, admin, user) = await StartAsync();
        await using var _app = app;
        var path = ModelAppFixture.WriteModel(app.DataDir, "doomed");
        Assert.Equal(HttpStatusCode.Forbidden, (await user.DeleteAsync("/api/v1/models/doomed")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.DeleteAsync("/api/v1/models/nope")).StatusCode);
        await admin.PostAsJsonAsync("/api/v1/generate", new { model = "doomed", prompt = "Once" });
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync("/api/v1/models/doomed")).StatusCode);
        Assert.False(File.Exists(path));
        var models = await (await admin.GetAsync("/api/v1/models")).ReadJsonAsync();
        Assert.Equal(0, models.GetProperty("models").GetArrayLength());
    }
}

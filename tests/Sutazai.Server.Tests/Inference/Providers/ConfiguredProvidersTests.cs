using System.Net;
using System.Net.Http.Json;
using Sutazai.Inference.Tests.Fakes;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Inference.Providers;

/// <summary>Ollama and an OpenAI-compatible server configured by settings, driven through the server's own API.</summary>
public sealed class ConfiguredProvidersTests
{
    /// <summary>Starts the app and signs in its first account (the admin), registering it unless <paramref name="existingAdmin"/> names one.</summary>
    private static async Task<(TestApp App, HttpClient Admin)> StartAsync(Dictionary<string, string?> settings, string? dataDir = null, string? existingAdmin = null)
    {
        settings["Sutazai:Inference:Ollama:AutoDetect"] = "false";
        var app = TestApp.Create(DbProvider.Sqlite, settings, dataDir);
        using var anon = app.Client();
        var adminName = existingAdmin ?? (await Accounts.RegisterAsync(anon)).Username;
        return (app, app.Client((await Accounts.LoginAsync(anon, adminName)).AccessToken));
    }

    [Fact]
    public async Task Ollama_ModelsAreListed_AndGenerateStreamsFromIt()
    {
        await using var ollama = await FakeOllamaServer.StartNewAsync();
        var (app, admin) = await StartAsync(new() { ["Sutazai:Inference:Ollama:Url"] = ollama.Root.ToString(), ["Sutazai:Inference:Provider"] = "ollama" });
        await using var _ = app;

        var models = await (await admin.GetAsync("/api/v1/models")).ReadJsonAsync();
        var ids = models.GetProperty("models").EnumerateArray().Select(m => (m.GetProperty("provider").GetString(), m.GetProperty("id").GetString())).ToList();
        Assert.Contains(("ollama", FakeOllamaServer.Llama), ids);
        Assert.Contains(("ollama", FakeOllamaServer.Qwen), ids);
        Assert.Equal(FakeOllamaServer.Llama, models.GetProperty("defaultModel").GetString());

        var chat = await admin.PostAsJsonAsync("/api/v1/generate", new
        {
            model = FakeOllamaServer.Llama,
            messages = new[] { new { role = "user", content = "hi" } },
            options = new { temperature = 0.3, topK = 7, maxTokens = 20, stop = new[] { "###" } },
        });
        Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
        var body = await chat.ReadJsonAsync();
        Assert.Equal(string.Concat(FakeOllamaServer.ChatTokens), body.GetProperty("text").GetString());
        Assert.Equal("ollama", body.GetProperty("provider").GetString());
        Assert.Equal(FakeOllamaServer.PromptEvalCount, body.GetProperty("usage").GetProperty("promptTokens").GetInt32());
        var sent = ollama.Single("POST", "/api/chat").Json["options"]!;
        Assert.Equal(0.3, (double)sent["temperature"]!, 3);
        Assert.Equal(7, (int)sent["top_k"]!);
        Assert.Equal(20, (int)sent["num_predict"]!);

        var raw = await (await admin.PostAsJsonAsync("/api/v1/generate", new { model = $"ollama/{FakeOllamaServer.Qwen}", prompt = "The fox" })).ReadJsonAsync();
        Assert.Equal(string.Concat(FakeOllamaServer.GenerateTokens), raw.GetProperty("text").GetString());
        Assert.True(ollama.Single("POST", "/api/generate").Json["raw"]!.GetValue<bool>());
    }

    [Fact]
    public async Task OllamaModelName_PullIsForwardedToOllama()
    {
        await using var ollama = await FakeOllamaServer.StartNewAsync();
        var (app, admin) = await StartAsync(new() { ["Sutazai:Inference:Ollama:Url"] = ollama.Root.ToString() });
        await using var _ = app;
        var start = await admin.PostAsJsonAsync("/api/v1/models/pull", new { source = "tinyllama:1.1b" });
        Assert.Equal(HttpStatusCode.Accepted, start.StatusCode);
        var id = (await start.ReadJsonAsync()).GetProperty("id").GetString();
        using var stream = await admin.SendAsync(Sse.Get($"/api/v1/models/pulls/{id}"), HttpCompletionOption.ResponseHeadersRead);
        var events = await Sse.ReadAllAsync(stream);
        Assert.Equal("completed", events[^1].Event);
        Assert.Equal("tinyllama:1.1b", events[^1].Data.GetProperty("modelId").GetString());
        Assert.Equal(1000, events[^1].Data.GetProperty("bytes").GetInt64());
        Assert.Equal("tinyllama:1.1b", ollama.Single("POST", "/api/pull").Json["model"]!.GetValue<string>());
    }

    [Fact]
    public async Task OllamaModelName_WithoutOllama_Returns422()
    {
        var (app, admin) = await StartAsync([]);
        await using var _ = app;
        var response = await admin.PostAsJsonAsync("/api/v1/models/pull", new { source = "tinyllama:1.1b" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Contains("Ollama", (await response.ReadJsonAsync()).GetProperty("errors").GetProperty("source")[0].GetString());
    }

    [Fact]
    public async Task OpenAICompatible_ModelsAreListed_AndGenerateUsesIt()
    {
        await using var openai = await FakeOpenAIServer.StartNewAsync();
        openai.RequiredApiKey = "sk-test-123";
        var (app, admin) = await StartAsync(new()
        {
            ["Sutazai:Inference:OpenAI:BaseUrl"] = openai.BaseUrl,
            ["Sutazai:Inference:OpenAI:ApiKey"] = "sk-test-123",
            ["Sutazai:Inference:Provider"] = "openai",
        });
        await using var _ = app;
        var models = await (await admin.GetAsync("/api/v1/models")).ReadJsonAsync();
        Assert.Contains(models.GetProperty("models").EnumerateArray(), m => m.GetProperty("provider").GetString() == "openai" && m.GetProperty("id").GetString() == FakeOpenAIServer.Qwen);

        using var streamed = await admin.SendAsync(Sse.Post("/api/v1/generate", new { model = FakeOpenAIServer.Qwen, messages = new[] { new { role = "user", content = "hi" } } }), HttpCompletionOption.ResponseHeadersRead);
        var events = await Sse.ReadAllAsync(streamed);
        Assert.Equal(FakeOpenAIServer.ChatTokens, events.Where(e => e.Event == "token").Select(e => e.Data.GetProperty("content").GetString()).ToArray());
        Assert.Equal("done", events[^1].Event);
        Assert.Equal("Bearer sk-test-123", openai.Single("POST", "/v1/chat/completions").Authorization);
    }

    [Fact]
    public async Task UnreachableOllama_IsReportedNotFatal()
    {
        var closed = FakeServer.ClosedPortRoot().Port;
        var (app, admin) = await StartAsync(new() { ["Sutazai:Inference:Ollama:Url"] = $"http://127.0.0.1:{closed}" });
        await using var _ = app;
        var models = await admin.GetAsync("/api/v1/models");
        Assert.Equal(HttpStatusCode.OK, models.StatusCode);
        var problem = Assert.Single((await models.ReadJsonAsync()).GetProperty("problems").EnumerateArray());
        Assert.Equal("ollama", problem.GetProperty("provider").GetString());
        Assert.Contains($"127.0.0.1:{closed}", problem.GetProperty("detail").GetString());

        var generate = await admin.PostAsJsonAsync("/api/v1/generate", new { model = "llama3.2:1b", prompt = "x" });
        Assert.Equal(HttpStatusCode.NotFound, generate.StatusCode);
        var none = await admin.PostAsJsonAsync("/api/v1/generate", new { prompt = "x" });
        Assert.Equal(HttpStatusCode.ServiceUnavailable, none.StatusCode);
        Assert.Contains($"127.0.0.1:{closed}", (await none.ReadJsonAsync()).GetProperty("detail").GetString());
    }

    private static List<string> OllamaIds(System.Text.Json.JsonElement models) =>
        [.. models.GetProperty("models").EnumerateArray().Where(m => m.GetProperty("provider").GetString() == "ollama").Select(m => m.GetProperty("id").GetString()!)];

    [Fact]
    public async Task Ollama_ConnectedAtRunTime_ServesItsModelsWithoutRestart_AndSurvivesOne()
    {
        await using var ollama = await FakeOllamaServer.StartNewAsync();
        var dataDir = Directory.CreateTempSubdirectory("sutazai-ollama-switch-").FullName;
        try
        {
            var (app, admin) = await StartAsync([], dataDir);
            var adminName = (await (await admin.GetAsync("/api/v1/users/me")).ReadJsonAsync()).GetProperty("username").GetString();
            await using (app)
            {
                var before = await (await admin.GetAsync("/api/v1/admin/ollama")).ReadJsonAsync();
                Assert.Equal(System.Text.Json.JsonValueKind.Null, before.GetProperty("url").ValueKind);
                Assert.Equal("none", before.GetProperty("source").GetString());
                Assert.Empty(OllamaIds(await (await admin.GetAsync("/api/v1/models")).ReadJsonAsync()));
                var refused = await admin.PostAsJsonAsync("/api/v1/models/pull", new { source = "tinyllama:1.1b" });
                Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.StatusCode);

                // Bad addresses: a clear 422 naming the field, nothing stored.
                foreach (var (url, message) in new (string?, string)[]
                {
                    (null, "Url is required."),
                    ("ftp://127.0.0.1:21", "Enter an http:// or https:// address"),
                    ("not a url", "Enter an http:// or https:// address"),
                    ("http://127.0.0.1:11434/?x=1", "must not carry a query"),
                    ($"http://127.0.0.1:{FakeServer.ClosedPortRoot().Port}", "No Ollama server answered at http://127.0.0.1:"),
                })
                {
                    var bad = await admin.PutAsJsonAsync("/api/v1/admin/ollama", new { url });
                    Assert.Equal(HttpStatusCode.UnprocessableEntity, bad.StatusCode);
                    Assert.Contains(message, (await bad.ReadJsonAsync()).GetProperty("errors").GetProperty("url")[0].GetString());
                }
                Assert.Equal("none", (await (await admin.GetAsync("/api/v1/admin/ollama")).ReadJsonAsync()).GetProperty("source").GetString());

                var connect = await admin.PutAsJsonAsync("/api/v1/admin/ollama", new { url = ollama.Root.ToString().TrimEnd('/') });
                Assert.Equal(HttpStatusCode.OK, connect.StatusCode);
                var state = await connect.ReadJsonAsync();
                Assert.Equal(ollama.Root.ToString(), state.GetProperty("url").GetString());
                Assert.Equal("administrator", state.GetProperty("source").GetString());
                Assert.True(state.GetProperty("reachable").GetBoolean());
                Assert.Equal([FakeOllamaServer.Llama, FakeOllamaServer.Qwen], state.GetProperty("models").EnumerateArray().Select(m => m.GetString()!).Order().ToArray());

                Assert.Equal([FakeOllamaServer.Llama, FakeOllamaServer.Qwen], OllamaIds(await (await admin.GetAsync("/api/v1/models")).ReadJsonAsync()).Order().ToArray());
                var chat = await admin.PostAsJsonAsync("/api/v1/generate", new { model = FakeOllamaServer.Llama, messages = new[] { new { role = "user", content = "hi" } } });
                Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
                Assert.Equal(string.Concat(FakeOllamaServer.ChatTokens), (await chat.ReadJsonAsync()).GetProperty("text").GetString());
                Assert.Equal(HttpStatusCode.Accepted, (await admin.PostAsJsonAsync("/api/v1/models/pull", new { source = "tinyllama:1.1b" })).StatusCode);
                Assert.Equal(ollama.Root.ToString(), await app.WithDbAsync(db => Task.FromResult(db.SystemFlags.Single(f => f.Key == "setting:ollama-url").Value)));
            }

            // A restart keeps the administrator's choice.
            var (again, admin2) = await StartAsync([], dataDir, adminName);
            await using (again)
            {
                Assert.Equal([FakeOllamaServer.Llama, FakeOllamaServer.Qwen], OllamaIds(await (await admin2.GetAsync("/api/v1/models")).ReadJsonAsync()).Order().ToArray());

                var disconnect = await admin2.DeleteAsync("/api/v1/admin/ollama");
                Assert.Equal(HttpStatusCode.OK, disconnect.StatusCode);
                Assert.Equal("none", (await disconnect.ReadJsonAsync()).GetProperty("source").GetString());
                Assert.Empty(OllamaIds(await (await admin2.GetAsync("/api/v1/models")).ReadJsonAsync()));
                var gone = await admin2.PostAsJsonAsync("/api/v1/generate", new { model = FakeOllamaServer.Llama, prompt = "x" });
                Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
            }
        }
        finally
        {
            Directory.Delete(dataDir, recursive: true);
        }
    }

    [Fact]
    public async Task Ollama_ConfiguredAddress_IsReported_AndAnAdministratorCanDisconnectIt()
    {
        await using var ollama = await FakeOllamaServer.StartNewAsync();
        var (app, admin) = await StartAsync(new() { ["Sutazai:Inference:Ollama:Url"] = ollama.Root.ToString() });
        await using var _ = app;
        var state = await (await admin.GetAsync("/api/v1/admin/ollama")).ReadJsonAsync();
        Assert.Equal("configuration", state.GetProperty("source").GetString());
        Assert.Equal(ollama.Root.ToString(), state.GetProperty("url").GetString());
        Assert.True(state.GetProperty("reachable").GetBoolean());
        Assert.NotEmpty(OllamaIds(await (await admin.GetAsync("/api/v1/models")).ReadJsonAsync()));

        Assert.Equal(HttpStatusCode.OK, (await admin.DeleteAsync("/api/v1/admin/ollama")).StatusCode);
        Assert.Empty(OllamaIds(await (await admin.GetAsync("/api/v1/models")).ReadJsonAsync()));
        var after = await (await admin.GetAsync("/api/v1/admin/ollama")).ReadJsonAsync();
        Assert.Equal("none", after.GetProperty("source").GetString());
        Assert.False(after.GetProperty("reachable").GetBoolean());
    }

    [Fact]
    public async Task OllamaConnection_IsForAdminsOnly()
    {
        await using var ollama = await FakeOllamaServer.StartNewAsync();
        var (app, _) = await StartAsync([]);
        await using var __ = app;
        using var anon = app.Client();
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        var user = app.Client(tokens.AccessToken);
        Assert.Equal(HttpStatusCode.Forbidden, (await user.GetAsync("/api/v1/admin/ollama")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await user.PutAsJsonAsync("/api/v1/admin/ollama", new { url = ollama.Root.ToString() })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await user.DeleteAsync("/api/v1/admin/ollama")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anon.GetAsync("/api/v1/admin/ollama")).StatusCode);
        Assert.Empty(ollama.Requests);
        Assert.Empty(OllamaIds(await (await user.GetAsync("/api/v1/models")).ReadJsonAsync()));
    }
}

using System.Net;
using System.Net.Http.Json;
using Sutazai.Inference.Tests.Fakes;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Inference.Providers;

/// <summary>Ollama and an OpenAI-compatible server configured by settings, driven through the server's own API.</summary>
public sealed class ConfiguredProvidersTests
{
    private static async Task<(TestApp App, HttpClient Admin)> StartAsync(Dictionary<string, string?> settings)
    {
        settings["Sutazai:Inference:Ollama:AutoDetect"] = "false";
        var app = TestApp.Create(DbProvider.Sqlite, settings);
        using var anon = app.Client();
        var admin = await Accounts.RegisterAsync(anon);
        return (app, app.Client((await Accounts.LoginAsync(anon, admin.Username)).AccessToken));
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
        var port = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        port.Start();
        var closed = ((IPEndPoint)port.LocalEndpoint).Port;
        port.Stop();
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
}

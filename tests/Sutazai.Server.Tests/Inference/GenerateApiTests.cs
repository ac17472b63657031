using System.Net;
using System.Net.Http.Json;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Inference.Gguf;
using Sutazai.Inference.LlamaCpp;
using Sutazai.Server.Tests.Infrastructure;
using Expect = Sutazai.TestSupport.DeterministicModelSpec.DefaultExpectations;

namespace Sutazai.Server.Tests.Inference;

/// <summary>POST /api/v1/generate on the in-process llama.cpp engine with a model whose greedy output is known.</summary>
public sealed class GenerateApiTests(ModelAppFixture fixture) : IClassFixture<ModelAppFixture>
{
    private TestApp App => fixture.App;

    private HttpClient Client() => App.Client(fixture.AdminTokens.AccessToken);

    private static object Greedy(int? maxTokens = null, string[]? stop = null) => new { temperature = 0, maxTokens, stop };

    [Fact]
    public async Task RawPrompt_IsContinuedAsIs_WithUsageAndTimings()
    {
        using var client = Client();
        var response = await client.PostAsJsonAsync("/api/v1/generate", new { prompt = Expect.OncePrompt, options = Greedy() });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.ReadJsonAsync();
        Assert.Equal(Expect.OnceCompletion, body.GetProperty("text").GetString());
        Assert.Equal(ModelAppFixture.ModelId, body.GetProperty("model").GetString());
        Assert.Equal("llamacpp", body.GetProperty("provider").GetString());
        Assert.Equal("stop", body.GetProperty("finishReason").GetString());
        var usage = body.GetProperty("usage");
        Assert.Equal(2, usage.GetProperty("promptTokens").GetInt32()); // BOS + "▁Once"
        Assert.Equal(4, usage.GetProperty("completionTokens").GetInt32());
        Assert.Equal(6, usage.GetProperty("totalTokens").GetInt32());
        var timings = body.GetProperty("timings");
        Assert.True(timings.GetProperty("totalMs").GetDouble() > 0);
        Assert.True(timings.GetProperty("timeToFirstTokenMs").GetDouble() <= timings.GetProperty("totalMs").GetDouble());
    }

    [Fact]
    public async Task Messages_GoThroughTheModelsChatTemplate()
    {
        using var client = Client();
        var response = await client.PostAsJsonAsync("/api/v1/generate", new
        {
            messages = new[] { new { role = "system", content = "Be brief." }, new { role = "user", content = "Hi there" } },
            options = Greedy(),
        });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.ReadJsonAsync();
        Assert.Equal(Expect.ChatReply, body.GetProperty("text").GetString());
        Assert.Equal(Expect.ChatReplyTokens, body.GetProperty("usage").GetProperty("completionTokens").GetInt32());
        Assert.Equal("stop", body.GetProperty("finishReason").GetString());
    }

    [Fact]
    public async Task Sse_StreamsTokenEvents_ThenDoneWithUsage()
    {
        using var client = Client();
        using var response = await client.SendAsync(Sse.Post("/api/v1/generate", new { messages = new[] { new { role = "user", content = "Hi" } }, options = Greedy() }), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = await Sse.ReadAllAsync(response);
        var tokens = events.Where(e => e.Event == "token").Select(e => e.Data.GetProperty("content").GetString()).ToList();
        Assert.Equal(Expect.ChatReply, string.Concat(tokens));
        Assert.Equal(Expect.ChatReplyTokens, tokens.Count); // one event per token: real streaming, not one blob
        var done = Assert.Single(events, e => e.Event == "done");
        Assert.Equal("done", events[^1].Event);
        Assert.Equal(Expect.ChatReplyTokens, done.Data.GetProperty("usage").GetProperty("completionTokens").GetInt32());
        Assert.Equal("stop", done.Data.GetProperty("finishReason").GetString());
    }

    [Fact]
    public async Task StopSequence_EndsGeneration_AndIsNotInTheText()
    {
        using var client = Client();
        var response = await client.PostAsJsonAsync("/api/v1/generate", new { messages = new[] { new { role = "user", content = "Hi" } }, options = Greedy(stop: ["help", "zzz"]) });
        var body = await response.ReadJsonAsync();
        Assert.Equal("Hello! How can I ", body.GetProperty("text").GetString());
        Assert.Equal("stop", body.GetProperty("finishReason").GetString());

        using var streaming = await client.SendAsync(Sse.Post("/api/v1/generate", new { prompt = Expect.OncePrompt, options = Greedy(stop: [" a t"]) }), HttpCompletionOption.ResponseHeadersRead);
        var events = await Sse.ReadAllAsync(streaming);
        Assert.Equal(" upon", string.Concat(events.Where(e => e.Event == "token").Select(e => e.Data.GetProperty("content").GetString())));
    }

    [Fact]
    public async Task MaxTokens_CutsOffWithFinishReasonLength()
    {
        using var client = Client();
        var response = await client.PostAsJsonAsync("/api/v1/generate", new { prompt = Expect.LoopPrompt, options = Greedy(maxTokens: 5) });
        var body = await response.ReadJsonAsync();
        Assert.Equal(string.Concat(Enumerable.Repeat(Expect.LoopPiece, 5)), body.GetProperty("text").GetString());
        Assert.Equal("length", body.GetProperty("finishReason").GetString());
        Assert.Equal(5, body.GetProperty("usage").GetProperty("completionTokens").GetInt32());
    }

    [Fact]
    public async Task MultiByteCharacters_SpanningTokens_ArriveWhole()
    {
        using var client = Client();
        var body = await (await client.PostAsJsonAsync("/api/v1/generate", new { prompt = Expect.EmojiPrompt, options = Greedy() })).ReadJsonAsync();
        Assert.Equal(Expect.EmojiCompletion, body.GetProperty("text").GetString());
        Assert.Equal(4, body.GetProperty("usage").GetProperty("completionTokens").GetInt32());
    }

    [Fact]
    public async Task ConcurrentRequests_OnOneModel_MatchSequentialResults()
    {
        using var client = Client();
        object[] requests =
        [
            new { prompt = Expect.OncePrompt, options = Greedy() },
            new { messages = new[] { new { role = "user", content = "first" } }, options = Greedy() },
            new { prompt = Expect.LoopPrompt, options = Greedy(maxTokens: 12) },
            new { prompt = "Once upon", options = Greedy() },
            new { messages = new[] { new { role = "user", content = "second one" } }, options = Greedy(stop: ["How"]) },
            new { prompt = Expect.EmojiPrompt, options = Greedy() },
        ];
        var sequential = new List<string>();
        foreach (var r in requests)
            sequential.Add((await (await client.PostAsJsonAsync("/api/v1/generate", r)).ReadJsonAsync()).GetProperty("text").GetString()!);

        var concurrent = await Task.WhenAll(requests.Select(async r =>
        {
            using var c = Client();
            var response = await c.PostAsJsonAsync("/api/v1/generate", r);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            return (await response.ReadJsonAsync()).GetProperty("text").GetString()!;
        }));
        Assert.Equal(sequential, concurrent);
        Assert.Equal(Expect.OnceCompletion, sequential[0]);
        Assert.Equal(" a time.", sequential[3]);
        Assert.Equal("Hello! ", sequential[4]);
    }

    [Fact]
    public async Task SecondTurn_ReusesTheKvPrefix_AndEvaluatesOnlyNewTokens()
    {
        using var client = Client();
        var longText = string.Join(" ", Enumerable.Repeat("Once upon a time", 60));
        var first = await (await client.PostAsJsonAsync("/api/v1/generate", new
        {
            messages = new[] { new { role = "user", content = longText } },
            options = Greedy(),
        })).ReadJsonAsync();
        Assert.Equal(Expect.ChatReply, first.GetProperty("text").GetString());
        var firstPrompt = first.GetProperty("usage").GetProperty("promptTokens").GetInt32();
        Assert.True(firstPrompt > 200, $"first prompt has {firstPrompt} tokens");

        var second = await (await client.PostAsJsonAsync("/api/v1/generate", new
        {
            messages = new[]
            {
                new { role = "user", content = longText },
                new { role = "assistant", content = Expect.ChatReply },
                new { role = "user", content = "And then?" },
            },
            options = Greedy(),
        })).ReadJsonAsync();
        Assert.Equal(Expect.ChatReply, second.GetProperty("text").GetString());
        var usage = second.GetProperty("usage");
        var secondPrompt = usage.GetProperty("promptTokens").GetInt32();
        var cached = usage.GetProperty("cachedPromptTokens").GetInt32();
        // The whole first turn (its prompt and the 8 reply tokens) is reused; only the new turn is read.
        Assert.Equal(firstPrompt + Expect.ChatReplyTokens, cached);
        // What is left is the new turn alone: end-of-turn and role markers plus "And then?" spelled in byte tokens.
        Assert.InRange(secondPrompt - cached, 5, 40);
        Assert.True(secondPrompt > firstPrompt + Expect.ChatReplyTokens);
    }

    [Fact]
    public async Task ClientDisconnect_CancelsGeneration_AndFreesTheSlot()
    {
        using var client = Client();
        using var response = await client.SendAsync(Sse.Post("/api/v1/generate", new { prompt = Expect.LoopPrompt, options = Greedy(maxTokens: 30000) }), HttpCompletionOption.ResponseHeadersRead);
        var received = 0;
        using (var cts = new CancellationTokenSource())
        {
            await foreach (var e in Sse.ReadAsync(response, cts.Token))
            {
                if (e.Event == "token" && ++received == 3) break;
            }
        }
        response.Dispose();

        var provider = App.Services.GetRequiredService<LlamaCppProvider>();
        var engine = (await provider.GetEngineAsync(ModelAppFixture.ModelId, CancellationToken.None)).Engine;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (engine.ActiveRequests > 0 && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Equal(0, engine.ActiveRequests);
        Assert.Equal(3, received);

        // The freed slot serves the next request normally.
        var next = await (await client.PostAsJsonAsync("/api/v1/generate", new { prompt = Expect.OncePrompt, options = Greedy() })).ReadJsonAsync();
        Assert.Equal(Expect.OnceCompletion, next.GetProperty("text").GetString());
        var metrics = await client.GetStringAsync("/metrics");
        Assert.Matches(@"sutazai_inference_requests_total\{[^}]*result=""cancelled""[^}]*\} [1-9]", metrics);
    }

    [Theory]
    [InlineData("{\"prompt\":\"x\",\"options\":{\"temperature\":5}}", "options.temperature")]
    [InlineData("{\"prompt\":\"x\",\"options\":{\"maxTokens\":1000000000}}", "options.maxTokens")]
    [InlineData("{\"prompt\":\"x\",\"options\":{\"maxTokens\":0}}", "options.maxTokens")]
    [InlineData("{\"prompt\":\"x\",\"options\":{\"topP\":0}}", "options.topP")]
    [InlineData("{\"prompt\":\"x\",\"options\":{\"topK\":-1}}", "options.topK")]
    [InlineData("{\"prompt\":\"x\",\"options\":{\"seed\":-3}}", "options.seed")]
    [InlineData("{\"prompt\":\"x\",\"options\":{\"stop\":[\"\"]}}", "options.stop")]
    [InlineData("{\"prompt\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"y\"}]}", "prompt")]
    [InlineData("{}", "prompt")]
    [InlineData("{\"messages\":[{\"role\":\"wizard\",\"content\":\"y\"}]}", "messages[0].role")]
    [InlineData("{\"messages\":[{\"role\":\"user\"}]}", "messages[0].content")]
    public async Task InvalidInput_Returns422NamingTheField(string json, string field)
    {
        using var client = Client();
        var response = await client.PostAsync("/api/v1/generate", new StringContent(json, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.True((await response.ReadJsonAsync()).GetProperty("errors").TryGetProperty(field, out _), $"no error for {field}");
    }

    [Fact]
    public async Task UnknownModel_Returns404_AndAnonymous401()
    {
        using var client = Client();
        var response = await client.PostAsJsonAsync("/api/v1/generate", new { model = "no-such-model", prompt = "x" });
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("no-such-model", (await response.ReadJsonAsync()).GetProperty("detail").GetString());
        using var anonymous = App.Client();
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsJsonAsync("/api/v1/generate", new { prompt = "x" })).StatusCode);
    }

    [Fact]
    public async Task Models_ListsTheGgufWithItsMetadata_AndLoadedState()
    {
        using var client = Client();
        await client.PostAsJsonAsync("/api/v1/generate", new { prompt = Expect.OncePrompt, options = Greedy() });
        var body = await (await client.GetAsync("/api/v1/models")).ReadJsonAsync();
        var model = Assert.Single(body.GetProperty("models").EnumerateArray(), m => m.GetProperty("id").GetString() == ModelAppFixture.ModelId);
        Assert.Equal("llamacpp", model.GetProperty("provider").GetString());
        Assert.Equal(new FileInfo(fixture.ModelPath).Length, model.GetProperty("sizeBytes").GetInt64());
        Assert.Equal(2048, model.GetProperty("contextLength").GetInt32());
        Assert.Equal("llama", model.GetProperty("family").GetString());
        Assert.Equal("F32", model.GetProperty("quantization").GetString());
        Assert.True(model.GetProperty("loaded").GetBoolean());
        Assert.Equal(ModelAppFixture.ModelId, body.GetProperty("defaultModel").GetString());
    }

    [Fact]
    public async Task Ready_ReportsInferenceHealthy()
    {
        using var client = Client();
        var ready = await (await client.GetAsync("/health/ready")).ReadJsonAsync();
        var inference = ready.GetProperty("checks").GetProperty("inference");
        Assert.Equal("healthy", inference.GetProperty("status").GetString());
        Assert.Contains("1 model(s) available", inference.GetProperty("description").GetString());
    }
}

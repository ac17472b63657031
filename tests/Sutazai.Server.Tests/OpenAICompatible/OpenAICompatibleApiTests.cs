using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Inference.LlamaCpp;
using Sutazai.Server.Tests.Infrastructure;
using Expect = Sutazai.TestSupport.DeterministicModelSpec.DefaultExpectations;

namespace Sutazai.Server.Tests.OpenAICompatible;

/// <summary>/v1 in OpenAI's wire format on the in-process engine with the tiny deterministic model.</summary>
public sealed class SqliteOpenAICompatibleApiTests(ModelAppFixture fixture) : OpenAICompatibleApiTests(fixture), IClassFixture<ModelAppFixture>;

public sealed class PostgresOpenAICompatibleApiTests(PostgresModelAppFixture fixture) : OpenAICompatibleApiTests(fixture), IClassFixture<PostgresModelAppFixture>;

public abstract class OpenAICompatibleApiTests(ModelAppFixtureBase fixture) : IAsyncLifetime
{
    private const string Model = ModelAppFixture.ModelId;
    private TestApp App => fixture.App;
    private string _key = "";

    public async Task InitializeAsync()
    {
        using var admin = App.Client(fixture.AdminTokens.AccessToken);
        var created = await admin.PostAsJsonAsync("/api/v1/keys", new { name = "openai tests" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        _key = (await created.ReadJsonAsync()).GetProperty("key").GetString()!;
    }

    public Task DisposeAsync() => Task.CompletedTask;

    private HttpClient Client() => App.Client(_key);

    private static object[] Hi => [new { role = "user", content = "Hi" }];

    private static StringContent RawJson(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>The <c>data:</c> payloads of an OpenAI event stream, in order (the last one is <c>[DONE]</c>).</summary>
    private static async Task<List<string>> ReadDataAsync(HttpResponseMessage response)
    {
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var text = await response.Content.ReadAsStringAsync();
        return text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(e => Assert.Single(e.Split('\n'), l => l.StartsWith("data: ", StringComparison.Ordinal))["data: ".Length..])
            .ToList();
    }

    private static void AssertError(JsonElement body, string type, string? param, string? code, string? message = null)
    {
        var error = body.GetProperty("error");
        Assert.Equal(["code", "message", "param", "type"], error.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(type, error.GetProperty("type").GetString());
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Equal(code, error.GetProperty("code").GetString());
        if (message is not null) Assert.Equal(message, error.GetProperty("message").GetString());
        Assert.Single(body.EnumerateObject());
    }

    [Fact]
    public async Task Models_ListsEveryModel_InOpenAIsFormat()
    {
        using var client = Client();
        var response = await client.GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.ReadJsonAsync();
        Assert.Equal("list", body.GetProperty("object").GetString());
        var model = Assert.Single(body.GetProperty("data").EnumerateArray());
        Assert.Equal(["created", "id", "object", "owned_by"], model.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(Model, model.GetProperty("id").GetString());
        Assert.Equal("model", model.GetProperty("object").GetString());
        Assert.Equal("llamacpp", model.GetProperty("owned_by").GetString());
        Assert.Equal(new DateTimeOffset(File.GetLastWriteTimeUtc(fixture.ModelPath)).ToUnixTimeSeconds(), model.GetProperty("created").GetInt64());

        // A JWT works as well as a key.
        using var jwt = App.Client(fixture.AdminTokens.AccessToken);
        Assert.Equal(HttpStatusCode.OK, (await jwt.GetAsync("/v1/models")).StatusCode);
    }

    [Fact]
    public async Task MissingBadOrRevokedKey_Is401_InOpenAIsErrorShape()
    {
        using var anonymous = App.Client();
        var response = await anonymous.PostAsJsonAsync("/v1/chat/completions", new { model = Model, messages = Hi });
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        AssertError(await response.ReadJsonAsync(), "authentication_error", null, "invalid_api_key",
            "You didn't provide an API key. Send it as 'Authorization: Bearer sk-sz-…'; create one with POST /api/v1/keys.");

        using var bad = App.Client("sk-sz-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        AssertError(await (await bad.GetAsync("/v1/models")).ReadJsonAsync(), "authentication_error", null, "invalid_api_key", "The API key is not valid.");

        using var admin = App.Client(fixture.AdminTokens.AccessToken);
        var created = await (await admin.PostAsJsonAsync("/api/v1/keys", new { name = "short-lived" })).ReadJsonAsync();
        using var revoked = App.Client(created.GetProperty("key").GetString());
        Assert.Equal(HttpStatusCode.OK, (await revoked.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/api/v1/keys/{created.GetProperty("id").GetGuid()}")).StatusCode);
        var afterRevoke = await revoked.GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.Unauthorized, afterRevoke.StatusCode);
        AssertError(await afterRevoke.ReadJsonAsync(), "authentication_error", null, "invalid_api_key", "The API key was revoked.");
    }

    [Fact]
    public async Task ChatCompletion_ReturnsTheExactReply_WithUsage()
    {
        using var client = Client();
        var response = await client.PostAsJsonAsync("/v1/chat/completions", new
        {
            model = Model,
            messages = new object[] { new { role = "system", content = "Be brief." }, new { role = "user", content = "Hi there" } },
            temperature = 0,
        });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.ReadJsonAsync();
        Assert.StartsWith("chatcmpl-", body.GetProperty("id").GetString());
        Assert.Equal("chat.completion", body.GetProperty("object").GetString());
        Assert.InRange(body.GetProperty("created").GetInt64(), DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 60, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 1);
        Assert.Equal(Model, body.GetProperty("model").GetString());
        var choice = Assert.Single(body.GetProperty("choices").EnumerateArray());
        Assert.Equal(0, choice.GetProperty("index").GetInt32());
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.Equal(Expect.ChatReply, choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(JsonValueKind.Null, choice.GetProperty("logprobs").ValueKind);
        var usage = body.GetProperty("usage");
        Assert.Equal(Expect.ChatReplyTokens, usage.GetProperty("completion_tokens").GetInt32());
        Assert.True(usage.GetProperty("prompt_tokens").GetInt32() > 5);
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32() + Expect.ChatReplyTokens, usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task ChatCompletion_AcceptsTextContentParts_AndDeveloperRole()
    {
        using var client = Client();
        var response = await client.PostAsync("/v1/chat/completions", RawJson(
            $$"""{"model":"{{Model}}","temperature":0,"messages":[{"role":"developer","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi"},{"type":"text","text":"there"}]}]}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.ReadJsonAsync();
        Assert.Equal(Expect.ChatReply, body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    [Fact]
    public async Task ChatCompletion_Stream_SendsRoleThenTokenDeltasThenFinishThenUsageThenDone()
    {
        using var client = Client();
        using var response = await client.PostAsJsonAsync("/v1/chat/completions", new
        {
            model = Model, messages = Hi, temperature = 0, stream = true, stream_options = new { include_usage = true },
        });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var data = await ReadDataAsync(response);
        Assert.Equal("[DONE]", data[^1]);
        var chunks = data[..^1].Select(d => JsonDocument.Parse(d).RootElement).ToList();
        Assert.Equal(1 + Expect.ChatReplyTokens + 2, chunks.Count); // role, one per token, finish, usage
        var id = chunks[0].GetProperty("id").GetString();
        Assert.StartsWith("chatcmpl-", id);
        Assert.All(chunks, c =>
        {
            Assert.Equal(id, c.GetProperty("id").GetString());
            Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString());
            Assert.Equal(Model, c.GetProperty("model").GetString());
        });

        Assert.Equal("""{"role":"assistant","content":""}""", chunks[0].GetProperty("choices")[0].GetProperty("delta").GetRawText());
        var deltas = chunks[1..^2].Select(c => Assert.Single(c.GetProperty("choices").EnumerateArray())).ToList();
        Assert.All(deltas, d =>
        {
            Assert.Equal(0, d.GetProperty("index").GetInt32());
            Assert.Equal(JsonValueKind.Null, d.GetProperty("finish_reason").ValueKind);
            Assert.Equal(["content"], d.GetProperty("delta").EnumerateObject().Select(p => p.Name));
        });
        Assert.Equal(["Hello", "!", " How", " can", " I", " help", " you", "?"], deltas.Select(d => d.GetProperty("delta").GetProperty("content").GetString()));
        Assert.Equal(Expect.ChatReply, string.Concat(deltas.Select(d => d.GetProperty("delta").GetProperty("content").GetString())));

        var finish = Assert.Single(chunks[^2].GetProperty("choices").EnumerateArray());
        Assert.Equal("{}", finish.GetProperty("delta").GetRawText());
        Assert.Equal("stop", finish.GetProperty("finish_reason").GetString());
        Assert.False(chunks[^2].TryGetProperty("usage", out _));

        Assert.Empty(chunks[^1].GetProperty("choices").EnumerateArray());
        var usage = chunks[^1].GetProperty("usage");
        Assert.Equal(Expect.ChatReplyTokens, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32() + Expect.ChatReplyTokens, usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task ChatCompletion_StreamWithoutIncludeUsage_HasNoUsageChunk()
    {
        using var client = Client();
        using var response = await client.PostAsJsonAsync("/v1/chat/completions", new { model = Model, messages = Hi, temperature = 0, stream = true });
        var data = await ReadDataAsync(response);
        Assert.Equal(1 + Expect.ChatReplyTokens + 1 + 1, data.Count); // role, tokens, finish, [DONE]
        Assert.DoesNotContain(data, d => d.Contains("\"usage\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Stop_StringOrArray_EndsTheReplyBeforeTheSequence()
    {
        using var client = Client();
        var single = await (await client.PostAsJsonAsync("/v1/chat/completions", new { model = Model, messages = Hi, temperature = 0, stop = "help" })).ReadJsonAsync();
        Assert.Equal("Hello! How can I ", single.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", single.GetProperty("choices")[0].GetProperty("finish_reason").GetString());

        var array = await (await client.PostAsJsonAsync("/v1/chat/completions", new { model = Model, messages = Hi, temperature = 0, stop = new[] { "zzz", " can" } })).ReadJsonAsync();
        Assert.Equal("Hello! How", array.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    [Fact]
    public async Task MaxTokens_AndMaxCompletionTokens_CutOffWithFinishReasonLength()
    {
        using var client = Client();
        foreach (var body in new object[]
        {
            new { model = Model, messages = Hi, temperature = 0, max_tokens = 3 },
            new { model = Model, messages = Hi, temperature = 0, max_completion_tokens = 3, max_tokens = 100 },
        })
        {
            var answer = await (await client.PostAsJsonAsync("/v1/chat/completions", body)).ReadJsonAsync();
            Assert.Equal("Hello! How", answer.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
            Assert.Equal("length", answer.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
            Assert.Equal(3, answer.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        }
    }

    [Theory]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"n\":2}", "n", null, "Only n=1 is supported: this server returns one choice per request.")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"temperature\":5}", "temperature", "invalid_value", "Invalid 'temperature': Temperature must be between 0 and 2.")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"top_p\":0}", "top_p", "invalid_value", "Invalid 'top_p': top_p must be greater than 0 and at most 1.")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":0}", "max_tokens", "invalid_value", "Invalid 'max_tokens': max_tokens must be between 1 and 32768.")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_completion_tokens\":1000000000}", "max_completion_tokens", "invalid_value", "Invalid 'max_completion_tokens': max_completion_tokens must be between 1 and 32768.")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"seed\":-1}", "seed", "invalid_value", "Invalid 'seed': Seed must be between 0 and 4294967295.")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stop\":[\"\"]}", "stop", "invalid_value", "Invalid 'stop': Stop sequences must be 1 to 64 characters.")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stop\":5}", "stop", null, "'stop' must be a string or an array of strings.")]
    [InlineData("{\"model\":\"x\"}", "messages", null, "'messages' is required.")]
    [InlineData("{\"messages\":[]}", "messages", "invalid_value", "Invalid 'messages': Give at least one message.")]
    [InlineData("{\"messages\":[{\"role\":\"wizard\",\"content\":\"Hi\"}]}", "messages[0].role", "invalid_value", "Invalid 'messages[0].role': Role must be 'system', 'user' or 'assistant'.")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]}", "messages[0].content", null, "Only text content parts ({\"type\": \"text\", \"text\": …}) are supported.")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}", "tools", null, "Tool calling is not supported by this server.")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"temperature\":\"hot\"}", "temperature", "invalid_json", "'temperature' has the wrong type.")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}", null, "invalid_json", null)]
    [InlineData("", null, "invalid_json", null)]
    [InlineData("[1]", null, "invalid_json", "The request body must be a JSON object.")]
    public async Task ChatCompletion_InvalidInput_Is400InOpenAIsShape(string json, string? param, string? code, string? message)
    {
        using var client = Client();
        var response = await client.PostAsync("/v1/chat/completions", RawJson(json));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        AssertError(await response.ReadJsonAsync(), "invalid_request_error", param, code, message);
    }

    [Fact]
    public async Task UnknownPathOrMethod_AndOversizedBody_AnswerInOpenAIsShape()
    {
        using var client = Client();
        var unknown = await client.PostAsJsonAsync("/v1/responses", new { model = Model });
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        AssertError(await unknown.ReadJsonAsync(), "invalid_request_error", null, null, "Invalid URL (POST /v1/responses).");
        var wrongMethod = await client.GetAsync("/v1/chat/completions");
        Assert.Equal(HttpStatusCode.NotFound, wrongMethod.StatusCode);
        AssertError(await wrongMethod.ReadJsonAsync(), "invalid_request_error", null, null, "Invalid URL (GET /v1/chat/completions).");

        var huge = await client.PostAsync("/v1/embeddings", RawJson("{\"input\":\"" + new string('a', 11 * 1024 * 1024) + "\"}"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, huge.StatusCode);
        AssertError(await huge.ReadJsonAsync(), "invalid_request_error", null, null);
    }

    [Fact]
    public async Task UnknownModel_Is404ModelNotFound()
    {
        using var client = Client();
        foreach (var (path, body) in new (string, object)[]
        {
            ("/v1/chat/completions", new { model = "no-such-model", messages = Hi }),
            ("/v1/completions", new { model = "no-such-model", prompt = "x" }),
            ("/v1/embeddings", new { model = "no-such-model", input = "x" }),
        })
        {
            var response = await client.PostAsJsonAsync(path, body);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            AssertError(await response.ReadJsonAsync(), "invalid_request_error", "model", "model_not_found",
                "The model 'no-such-model' does not exist. GET /v1/models lists the models you can use.");
        }
    }

    [Fact]
    public async Task Completions_ContinueTheRawPrompt_AndStream()
    {
        using var client = Client();
        var body = await (await client.PostAsJsonAsync("/v1/completions", new { model = Model, prompt = Expect.OncePrompt, temperature = 0 })).ReadJsonAsync();
        Assert.StartsWith("cmpl-", body.GetProperty("id").GetString());
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        var choice = Assert.Single(body.GetProperty("choices").EnumerateArray());
        Assert.Equal(Expect.OnceCompletion, choice.GetProperty("text").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(JsonValueKind.Null, choice.GetProperty("logprobs").ValueKind);
        Assert.Equal(2, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(4, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(6, body.GetProperty("usage").GetProperty("total_tokens").GetInt32());

        var limited = await (await client.PostAsJsonAsync("/v1/completions", new { model = Model, prompt = Expect.LoopPrompt, temperature = 0, max_tokens = 4 })).ReadJsonAsync();
        Assert.Equal(string.Concat(Enumerable.Repeat(Expect.LoopPiece, 4)), limited.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal("length", limited.GetProperty("choices")[0].GetProperty("finish_reason").GetString());

        using var streamed = await client.PostAsJsonAsync("/v1/completions", new
        {
            model = Model, prompt = new[] { Expect.OncePrompt }, temperature = 0, stream = true, stream_options = new { include_usage = true },
        });
        var data = await ReadDataAsync(streamed);
        Assert.Equal("[DONE]", data[^1]);
        var chunks = data[..^1].Select(d => JsonDocument.Parse(d).RootElement).ToList();
        Assert.All(chunks, c => Assert.Equal("text_completion", c.GetProperty("object").GetString()));
        Assert.Equal([" upon", " a", " time", ".", ""], chunks[..^1].Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal("stop", chunks[^2].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Empty(chunks[^1].GetProperty("choices").EnumerateArray());
        Assert.Equal(4, chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Embeddings_HaveTheModelsWidth_AreUnitLength_AndRepeatExactly()
    {
        using var client = Client();
        var response = await client.PostAsJsonAsync("/v1/embeddings", new { model = Model, input = new[] { "Once upon a time", "Hello! How can I help you?", "Once upon a time" } });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.ReadJsonAsync();
        Assert.Equal("list", body.GetProperty("object").GetString());
        Assert.Equal(Model, body.GetProperty("model").GetString());
        var data = body.GetProperty("data").EnumerateArray().ToList();
        Assert.Equal([0, 1, 2], data.Select(d => d.GetProperty("index").GetInt32()));
        Assert.All(data, d => Assert.Equal("embedding", d.GetProperty("object").GetString()));
        var vectors = data.Select(d => d.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToList();
        Assert.All(vectors, v => Assert.Equal(320, v.Length)); // the tiny model's n_embd
        Assert.All(vectors, v => Assert.Equal(1.0, Math.Sqrt(v.Sum(x => (double)x * x)), 4));
        Assert.Equal(vectors[0], vectors[2]);
        Assert.NotEqual(vectors[0], vectors[1]);
        var usage = body.GetProperty("usage");
        Assert.True(usage.GetProperty("prompt_tokens").GetInt64() >= 3);
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt64(), usage.GetProperty("total_tokens").GetInt64());

        // A later call, a single string, and base64 all give the same vector.
        var again = await (await client.PostAsJsonAsync("/v1/embeddings", new { model = Model, input = "Once upon a time" })).ReadJsonAsync();
        Assert.Equal(vectors[0], again.GetProperty("data")[0].GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray());
        var base64 = await (await client.PostAsJsonAsync("/v1/embeddings", new { model = Model, input = "Once upon a time", encoding_format = "base64" })).ReadJsonAsync();
        var bytes = Convert.FromBase64String(base64.GetProperty("data")[0].GetProperty("embedding").GetString()!);
        Assert.Equal(vectors[0], System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray());
    }

    [Theory]
    [InlineData("{\"input\":[]}", "input", "'input' must not be an empty array.")]
    [InlineData("{\"input\":[\"a\",\"\"]}", "input[1]", "'input[1]' is empty; every input must have text.")]
    [InlineData("{\"input\":[1,2,3]}", "input", "'input' must be a string or an array of strings; token arrays are not supported.")]
    [InlineData("{}", "input", "'input' is required.")]
    [InlineData("{\"input\":\"a\",\"encoding_format\":\"int8\"}", "encoding_format", "'encoding_format' must be 'float' or 'base64'.")]
    [InlineData("{\"input\":\"a\",\"dimensions\":64}", "dimensions", "Model 'tiny-deterministic' produces 320-dimensional embeddings and cannot shorten them; omit 'dimensions' or pass 320.")]
    public async Task Embeddings_InvalidInput_Is400(string json, string param, string message)
    {
        using var client = Client();
        var response = await client.PostAsync("/v1/embeddings", RawJson(json));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        AssertError(await response.ReadJsonAsync(), "invalid_request_error", param, null, message);
    }

    [Fact]
    public async Task ClientDisconnect_CancelsGeneration()
    {
        using var client = Client();
        using var response = await client.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = JsonContent.Create(new { model = Model, prompt = Expect.LoopPrompt, temperature = 0, max_tokens = 30000, stream = true }),
        }, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using (var reader = new StreamReader(await response.Content.ReadAsStreamAsync()))
        {
            var chunks = 0;
            while (chunks < 3 && await reader.ReadLineAsync() is { } line)
            {
                if (line.StartsWith("data: ", StringComparison.Ordinal)) chunks++;
            }
            Assert.Equal(3, chunks);
        }
        response.Dispose();

        var engine = (await App.Services.GetRequiredService<LlamaCppProvider>().GetEngineAsync(Model, CancellationToken.None)).Engine;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (engine.ActiveRequests > 0 && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Equal(0, engine.ActiveRequests);
    }
}

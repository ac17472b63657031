using System.Net;
using System.Net.Http.Json;
using Sutazai.Server.Tests.Infrastructure;
using Expect = Sutazai.TestSupport.DeterministicModelSpec.DefaultExpectations;

namespace Sutazai.Server.Tests.Platform;

/// <summary>
/// OTLP export, read back by an in-test OTLP/HTTP receiver: one chat request gives a trace with the HTTP server span
/// and, inside it, the model span with the GenAI conventions' token counts, and the GenAI metrics with their units.
/// </summary>
public sealed class TelemetryTests
{
    /// <summary>An app with the tiny model that exports traces and metrics to <paramref name="receiver"/> every half second.</summary>
    private static TestApp AppExportingTo(OtlpReceiver receiver)
    {
        var app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.Root.ToString().TrimEnd('/'),
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "200",
            ["OTEL_METRIC_EXPORT_INTERVAL"] = "500",
            ["Sutazai:Inference:Ollama:AutoDetect"] = "false",
        });
        ModelAppFixtureBase.WriteModel(app.DataDir);
        return app;
    }

    private static async Task<HttpClient> SignedInAsync(TestApp app)
    {
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(app.Client());
        return app.Client(tokens.AccessToken);
    }

    private static Task<HttpResponseMessage> ChatAsync(HttpClient client) => client.PostAsJsonAsync("/v1/chat/completions", new
    {
        model = ModelAppFixtureBase.ModelId,
        messages = new object[] { new { role = "user", content = "Hi there" } },
        temperature = 0,
    });

    [Fact]
    public async Task OneChatRequest_IsExportedAsATraceWithTheModelSpan_AndGenAiMetrics()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var app = AppExportingTo(receiver);
        using var client = await SignedInAsync(app);
        var response = await ChatAsync(client);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var usage = (await response.ReadJsonAsync()).GetProperty("usage");

        OtlpReceiver.Span? server = null, model = null;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while ((server is null || model is null || !receiver.Metrics().Any(m => m.Name == "gen_ai.client.token.usage")) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
            var spans = receiver.Spans();
            server = spans.FirstOrDefault(s => s.Attributes.TryGetValue("http.route", out var route) && (string)route == "/v1/chat/completions");
            model = spans.FirstOrDefault(s => s.Name == $"chat {ModelAppFixtureBase.ModelId}");
        }
        Assert.NotNull(server);
        Assert.NotNull(model);
        Assert.Equal(2, server.Kind); // SERVER
        Assert.Equal(200L, server.Attributes["http.response.status_code"]);
        Assert.Equal(3, model.Kind); // CLIENT
        Assert.Equal("Sutazai.Inference", model.Scope);
        Assert.Equal(server.TraceId, model.TraceId); // the model call is part of the request's trace
        Assert.Equal("chat", model.Attributes["gen_ai.operation.name"]);
        Assert.Equal(ModelAppFixtureBase.ModelId, model.Attributes["gen_ai.request.model"]);
        Assert.Equal((long)usage.GetProperty("prompt_tokens").GetInt32(), model.Attributes["gen_ai.usage.input_tokens"]);
        Assert.Equal((long)Expect.ChatReplyTokens, model.Attributes["gen_ai.usage.output_tokens"]);
        Assert.DoesNotContain(model.Attributes.Values.OfType<string>(), v => v.Contains("Hi there", StringComparison.Ordinal)); // no prompt text

        var metrics = receiver.Metrics();
        Assert.Equal("{token}", metrics.First(m => m.Name == "gen_ai.client.token.usage").Unit);
        Assert.Equal("s", metrics.First(m => m.Name == "gen_ai.client.operation.duration").Unit);
        Assert.Contains(metrics, m => m.Name == "http.server.request.duration" && m.Unit == "s");
    }

    /// <summary>
    /// A raw completion (<c>/v1/completions</c>: a prompt, no chat template) gets its own GenAI span,
    /// <c>text_completion {model}</c>, with the usage the response reported, and its metrics join the chat client's
    /// streams: one histogram per GenAI metric in <c>/metrics</c>, told apart by <c>gen_ai_operation_name</c>.
    /// </summary>
    [Fact]
    public async Task ARawCompletion_IsATextCompletionSpan_AndSharesTheGenAiMetricStreams()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var app = AppExportingTo(receiver);
        using var client = await SignedInAsync(app);
        var chat = await ChatAsync(client);
        Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
        var response = await client.PostAsJsonAsync("/v1/completions", new
        {
            model = ModelAppFixtureBase.ModelId,
            prompt = "Hello",
            max_tokens = 3,
            temperature = 0,
        });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.ReadJsonAsync();
        var usage = body.GetProperty("usage");

        OtlpReceiver.Span? server = null, model = null;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while ((server is null || model is null) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
            var spans = receiver.Spans();
            server = spans.FirstOrDefault(s => s.Attributes.TryGetValue("http.route", out var route) && (string)route == "/v1/completions");
            model = spans.FirstOrDefault(s => s.Name == $"text_completion {ModelAppFixtureBase.ModelId}");
        }
        Assert.NotNull(server);
        Assert.NotNull(model);
        Assert.Equal(3, model.Kind); // CLIENT
        Assert.Equal("Sutazai.Inference", model.Scope);
        Assert.Equal(server.TraceId, model.TraceId);
        Assert.Equal(server.SpanId, model.ParentSpanId);
        Assert.Equal("text_completion", model.Attributes["gen_ai.operation.name"]);
        Assert.Equal("llamacpp", model.Attributes["gen_ai.provider.name"]);
        Assert.Equal(ModelAppFixtureBase.ModelId, model.Attributes["gen_ai.request.model"]);
        Assert.Equal(3L, model.Attributes["gen_ai.request.max_tokens"]);
        Assert.Equal((long)usage.GetProperty("prompt_tokens").GetInt32(), model.Attributes["gen_ai.usage.input_tokens"]);
        Assert.Equal((long)usage.GetProperty("completion_tokens").GetInt32(), model.Attributes["gen_ai.usage.output_tokens"]);
        Assert.DoesNotContain(model.Attributes.Values.OfType<string>(), v => v.Contains("Hello", StringComparison.Ordinal));

        var text = await client.GetStringAsync("/metrics");
        foreach (var family in (string[])["gen_ai_client_token_usage", "gen_ai_client_operation_duration_seconds"])
            Assert.Single(text.Split('\n'), line => line.StartsWith($"# TYPE {family} histogram", StringComparison.Ordinal));
        foreach (var operation in (string[])["chat", "text_completion"])
            Assert.Matches($@"gen_ai_client_token_usage_count\{{[^}}]*gen_ai_operation_name=""{operation}""[^}}]*gen_ai_token_type=""output""[^}}]*\}} 1", text);
    }
}

using Microsoft.Extensions.AI;
using Sutazai.Inference.Providers;
using Sutazai.Inference.Tests.Fakes;
using static Sutazai.Inference.Tests.TestHelpers;

namespace Sutazai.Inference.Tests;

public sealed class OpenAICompatibleProviderTests : IAsyncLifetime
{
    private const string Key = "sk-test-123";
    private static readonly ChatMessage[] Hello = [new(ChatRole.User, "Say hi")];

    private FakeOpenAIServer _server = null!;
    private OpenAICompatibleProvider _provider = null!;

    public async Task InitializeAsync()
    {
        _server = await FakeOpenAIServer.StartNewAsync();
        _server.RequiredApiKey = Key;
        _provider = new OpenAICompatibleProvider(new OpenAIOptions { BaseUrl = _server.BaseUrl, ApiKey = Key }, timeout: TimeSpan.FromSeconds(30));
    }

    public async Task DisposeAsync()
    {
        _provider.Dispose();
        await _server.DisposeAsync();
    }

    private OpenAICompatibleProvider WithKey(string key) =>
        new(new OpenAIOptions { BaseUrl = _server.BaseUrl, ApiKey = key }, timeout: TimeSpan.FromSeconds(30));

    [Fact]
    public async Task ListModels_reads_models_with_the_bearer_key()
    {
        var models = await _provider.ListModelsAsync(CancellationToken.None);

        Assert.Equal(
            [
                new ModelInfo("qwen2.5-0.5b-instruct", "openai", null, 32768, null, null, true),
                new ModelInfo("llama-3.2-1b-instruct", "openai", null, null, null, null, true),
            ],
            models);
        Assert.Equal("openai", _provider.Name);
        Assert.Equal("Bearer sk-test-123", _server.Single("GET", "/v1/models").Authorization);
    }

    [Fact]
    public async Task Rejected_key_throws_InferenceUnavailableException_saying_so()
    {
        using var provider = WithKey("sk-wrong");
        var expected = $"The OpenAI-compatible server at {_server.BaseUrl} rejected the API key (HTTP 401 Unauthorized): "
            + "Incorrect API key provided: sk-wr***ng. You can find your API key at https://platform.openai.com/account/api-keys. Check Sutazai:Inference:OpenAI:ApiKey.";

        var fromList = await Assert.ThrowsAsync<InferenceUnavailableException>(() => provider.ListModelsAsync(CancellationToken.None));
        var fromChat = await Assert.ThrowsAsync<InferenceUnavailableException>(() => provider.GetChatClient(FakeOpenAIServer.Qwen).GetResponseAsync(Hello));
        var fromStream = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => CollectAsync(provider.GetChatClient(FakeOpenAIServer.Qwen).GetStreamingResponseAsync(Hello)));
        var fromCompletion = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => CollectAsync(provider.CompleteAsync(FakeOpenAIServer.Qwen, "x", null, CancellationToken.None)));
        var health = await provider.CheckHealthAsync(CancellationToken.None);

        Assert.Equal(expected, fromList.Message);
        Assert.Equal(expected, fromChat.Message);
        Assert.Equal(expected, fromStream.Message);
        Assert.Equal(expected, fromCompletion.Message);
        Assert.Equal(new ProviderHealth("openai", false, expected), health);
        Assert.All(_server.Requests, r => Assert.Equal("Bearer sk-wrong", r.Authorization));
    }

    [Fact]
    public async Task Streaming_chat_sends_every_option_on_the_wire_and_returns_chunks_usage_and_finish_reason()
    {
        var options = new ChatOptions
        {
            Temperature = 0.25f,
            TopP = 0.9f,
            TopK = 40,
            Seed = 1234,
            MaxOutputTokens = 64,
            StopSequences = ["</s>", "User:"],
        };

        var updates = await CollectAsync(_provider.GetChatClient(FakeOpenAIServer.Qwen).GetStreamingResponseAsync(Hello, options));

        var request = _server.Single("POST", "/v1/chat/completions");
        Assert.Equal("Bearer sk-test-123", request.Authorization);
        var body = request.Json;
        Assert.Equal(
            ["max_completion_tokens", "max_tokens", "messages", "model", "seed", "stop", "stream", "stream_options", "temperature", "top_k", "top_p"],
            Keys(body));
        Assert.Equal("qwen2.5-0.5b-instruct", (string?)body["model"]);
        Assert.True((bool?)body["stream"]);
        Assert.True((bool?)body["stream_options"]!["include_usage"]);
        Assert.Equal(0.25, (double)body["temperature"]!);
        Assert.Equal(0.9, (double)body["top_p"]!);
        Assert.Equal(40, (int)body["top_k"]!);
        Assert.Equal(1234, (long)body["seed"]!);
        Assert.Equal(64, (int)body["max_completion_tokens"]!);
        Assert.Equal(64, (int)body["max_tokens"]!);
        Assert.Equal(["</s>", "User:"], Strings(body["stop"]));
        Assert.Equal("user", (string?)body["messages"]![0]!["role"]);

        Assert.Equal(["Hi", " there", "!"], Texts(updates));
        // One update per SSE chunk: role, three tokens, finish_reason, usage-only (choices: []). The adapter repeats
        // the finish reason on the usage update.
        Assert.Equal(6, updates.Count);
        Assert.Equal(["", "Hi", " there", "!", "", ""], updates.Select(u => u.Text));
        Assert.Equal([null, null, null, null, ChatFinishReason.Stop, ChatFinishReason.Stop], updates.Select(u => u.FinishReason));
        AssertUsage(Usage(updates[^1]), 9, 3, 12);
        Assert.Single(updates, u => u.Contents.OfType<UsageContent>().Any());
        var response = updates.ToChatResponse();
        Assert.Equal("Hi there!", response.Text);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
        AssertUsage(response.Usage!, 9, 3, 12);
    }

    [Fact]
    public async Task Non_streaming_chat_returns_text_usage_and_length_finish_reason()
    {
        var response = await _provider.GetChatClient(FakeOpenAIServer.Llama).GetResponseAsync(Hello, new ChatOptions { MaxOutputTokens = 2 });

        var body = _server.Single("POST", "/v1/chat/completions").Json;
        Assert.Null((bool?)body["stream"]);
        Assert.Equal("llama-3.2-1b-instruct", (string?)body["model"]);
        Assert.Equal(2, (int)body["max_completion_tokens"]!);
        Assert.Equal(2, (int)body["max_tokens"]!);
        Assert.Equal("Hi there", response.Text);
        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        AssertUsage(response.Usage!, 9, 2, 11);
    }

    [Fact]
    public async Task Official_OpenAI_endpoint_gets_no_top_k_and_no_max_tokens_twin()
    {
        using var redirect = new RedirectHandler(_server.Root);
        using var provider = new OpenAICompatibleProvider(
            new OpenAIOptions { BaseUrl = "https://api.openai.com/v1", ApiKey = Key }, redirect);
        var options = new ChatOptions { TopK = 40, MaxOutputTokens = 64, Temperature = 0.5f };

        await provider.GetChatClient(FakeOpenAIServer.Qwen).GetResponseAsync(Hello, options);
        await CollectAsync(provider.CompleteAsync(FakeOpenAIServer.Qwen, "x", options, CancellationToken.None));

        Assert.Equal(["https://api.openai.com/v1/chat/completions", "https://api.openai.com/v1/completions"], redirect.Seen);
        var chat = _server.Single("POST", "/v1/chat/completions").Json;
        Assert.Equal(["max_completion_tokens", "messages", "model", "temperature"], Keys(chat));
        var completion = _server.Single("POST", "/v1/completions").Json;
        Assert.Equal(["max_tokens", "model", "prompt", "stream", "stream_options", "temperature"], Keys(completion));
    }

    [Fact]
    public async Task Empty_model_id_uses_the_configured_model()
    {
        using var provider = new OpenAICompatibleProvider(new OpenAIOptions { BaseUrl = _server.BaseUrl, ApiKey = Key, Model = FakeOpenAIServer.Llama });

        await provider.GetChatClient("").GetResponseAsync(Hello);
        await CollectAsync(provider.CompleteAsync("", "x", null, CancellationToken.None));

        Assert.Equal("llama-3.2-1b-instruct", (string?)_server.Single("POST", "/v1/chat/completions").Json["model"]);
        Assert.Equal("llama-3.2-1b-instruct", (string?)_server.Single("POST", "/v1/completions").Json["model"]);
        Assert.Throws<ArgumentException>(() => _provider.GetChatClient(" "));
    }

    [Fact]
    public async Task Cancelling_a_chat_stream_stops_reading_and_aborts_the_connection()
    {
        var client = _provider.GetChatClient(FakeOpenAIServer.Qwen);

        var received = await CancelAfterFirstUpdateAsync(ct => client.GetStreamingResponseAsync(Hello, null, ct), _server);

        Assert.Empty(Texts(received)); // The first chunk only carries the assistant role.
        Assert.Equal(ChatRole.Assistant, Assert.Single(received).Role);
    }

    [Fact]
    public async Task Raw_completion_streams_sse_chunks_then_usage_and_stop()
    {
        var options = new ChatOptions
        {
            Temperature = 0.5f,
            TopP = 0.95f,
            TopK = 20,
            Seed = 42,
            MaxOutputTokens = 16,
            StopSequences = ["\n"],
        };

        var updates = await CollectAsync(_provider.CompleteAsync(FakeOpenAIServer.Qwen, "The quick brown fox", options, CancellationToken.None));

        var request = _server.Single("POST", "/v1/completions");
        Assert.Equal("Bearer sk-test-123", request.Authorization);
        var body = request.Json;
        Assert.Equal(["max_tokens", "model", "prompt", "seed", "stop", "stream", "stream_options", "temperature", "top_k", "top_p"], Keys(body));
        Assert.Equal("qwen2.5-0.5b-instruct", (string?)body["model"]);
        Assert.Equal("The quick brown fox", (string?)body["prompt"]);
        Assert.True((bool?)body["stream"]);
        Assert.True((bool?)body["stream_options"]!["include_usage"]);
        Assert.Equal(0.5, (double)body["temperature"]!);
        Assert.Equal(0.95, (double)body["top_p"]!);
        Assert.Equal(20, (int)body["top_k"]!);
        Assert.Equal(42, (long)body["seed"]!);
        Assert.Equal(16, (int)body["max_tokens"]!);
        Assert.Equal(["\n"], Strings(body["stop"]));

        Assert.Equal(6, updates.Count);
        Assert.Equal([" jumps", " over", " the", " lazy", " dog"], updates.Take(5).Select(u => u.Text));
        Assert.All(updates.Take(5), u => Assert.Null(u.FinishReason));
        var last = updates[^1];
        Assert.Equal("", last.Text);
        Assert.Equal(ChatFinishReason.Stop, last.FinishReason);
        AssertUsage(Usage(last), 9, 5, 14);
        Assert.Equal("cmpl-fake0001", last.ResponseId);
    }

    [Fact]
    public async Task Raw_completion_reports_length_and_no_usage_when_the_server_ignores_include_usage()
    {
        _server.HonorIncludeUsage = false;

        var updates = await CollectAsync(_provider.CompleteAsync(FakeOpenAIServer.Llama, "Once", new ChatOptions { MaxOutputTokens = 2 }, CancellationToken.None));

        Assert.Equal([" jumps", " over"], Texts(updates));
        Assert.Equal(3, updates.Count);
        Assert.Equal(ChatFinishReason.Length, updates[^1].FinishReason);
        Assert.Empty(updates[^1].Contents);
    }

    [Fact]
    public async Task Cancelling_a_raw_completion_stops_reading_and_aborts_the_connection()
    {
        var received = await CancelAfterFirstUpdateAsync(
            ct => _provider.CompleteAsync(FakeOpenAIServer.Qwen, "The quick brown fox", null, ct), _server);

        Assert.Equal([" jumps"], Texts(received));
    }

    [Fact]
    public async Task Error_event_mid_stream_is_reported()
    {
        _server.ErrorEventAfterFirstChunk = "CUDA out of memory";

        var fromCompletion = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => CollectAsync(_provider.CompleteAsync(FakeOpenAIServer.Qwen, "x", null, CancellationToken.None)));

        Assert.Equal($"The OpenAI-compatible server at {_server.BaseUrl} failed while completing with model 'qwen2.5-0.5b-instruct': CUDA out of memory", fromCompletion.Message);
    }

    [Fact]
    public async Task Wrong_base_url_is_not_mistaken_for_a_missing_model()
    {
        using var provider = new OpenAICompatibleProvider(new OpenAIOptions { BaseUrl = _server.Root.ToString(), ApiKey = Key });

        var fromCompletion = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => CollectAsync(provider.CompleteAsync(FakeOpenAIServer.Qwen, "x", null, CancellationToken.None)));
        var fromList = await Assert.ThrowsAsync<InferenceUnavailableException>(() => provider.ListModelsAsync(CancellationToken.None));

        var root = _server.Root.ToString().TrimEnd('/');
        Assert.Equal($"The OpenAI-compatible server at {root} has no /completions (HTTP 404 Not Found): Not Found. Sutazai:Inference:OpenAI:BaseUrl usually ends in /v1.", fromCompletion.Message);
        Assert.Equal($"The OpenAI-compatible server at {root} has no /models (HTTP 404 Not Found): Not Found. Sutazai:Inference:OpenAI:BaseUrl usually ends in /v1.", fromList.Message);
    }

    [Fact]
    public async Task Slow_server_times_out_with_InferenceUnavailableException()
    {
        using var provider = new OpenAICompatibleProvider(new OpenAIOptions { BaseUrl = _server.BaseUrl, ApiKey = Key }, timeout: TimeSpan.FromMilliseconds(500));
        _server.DelayBeforeReply = TimeSpan.FromSeconds(20);

        var fromChat = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => provider.GetChatClient(FakeOpenAIServer.Qwen).GetResponseAsync(Hello));
        var fromStream = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => CollectAsync(provider.GetChatClient(FakeOpenAIServer.Qwen).GetStreamingResponseAsync(Hello)));
        var fromCompletion = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => CollectAsync(provider.CompleteAsync(FakeOpenAIServer.Qwen, "x", null, CancellationToken.None)));

        var expected = $"The OpenAI-compatible server at {_server.BaseUrl} did not answer /{{0}} within 0.5 s.";
        Assert.Equal(string.Format(expected, "chat/completions"), fromChat.Message);
        Assert.Equal(string.Format(expected, "chat/completions"), fromStream.Message);
        Assert.Equal(string.Format(expected, "completions"), fromCompletion.Message);
    }

    [Fact]
    public async Task Health_lists_the_served_models()
    {
        var health = await _provider.CheckHealthAsync(CancellationToken.None);

        Assert.Equal(
            new ProviderHealth("openai", true, $"OpenAI-compatible server at {_server.BaseUrl}: 2 model(s) (qwen2.5-0.5b-instruct, llama-3.2-1b-instruct)"),
            health);
    }

    [Fact]
    public async Task Server_down_throws_InferenceUnavailableException_naming_the_url()
    {
        var baseUrl = new Uri(FakeServer.ClosedPortRoot(), "v1").ToString();
        using var provider = new OpenAICompatibleProvider(new OpenAIOptions { BaseUrl = baseUrl, ApiKey = Key });
        var prefix = $"The OpenAI-compatible server at {baseUrl} is not reachable: Connection refused";

        var fromList = await Assert.ThrowsAsync<InferenceUnavailableException>(() => provider.ListModelsAsync(CancellationToken.None));
        var fromChat = await Assert.ThrowsAsync<InferenceUnavailableException>(() => provider.GetChatClient(FakeOpenAIServer.Qwen).GetResponseAsync(Hello));
        var fromStream = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => CollectAsync(provider.GetChatClient(FakeOpenAIServer.Qwen).GetStreamingResponseAsync(Hello)));
        var fromCompletion = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => CollectAsync(provider.CompleteAsync(FakeOpenAIServer.Qwen, "x", null, CancellationToken.None)));
        var health = await provider.CheckHealthAsync(CancellationToken.None);

        Assert.StartsWith(prefix, fromList.Message, StringComparison.Ordinal);
        Assert.StartsWith(prefix, fromChat.Message, StringComparison.Ordinal);
        Assert.StartsWith(prefix, fromStream.Message, StringComparison.Ordinal);
        Assert.StartsWith(prefix, fromCompletion.Message, StringComparison.Ordinal);
        Assert.False(health.Available);
        Assert.StartsWith(prefix, health.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Official_endpoint_detection_and_default_base_url()
    {
        using var provider = new OpenAICompatibleProvider(new OpenAIOptions());

        Assert.Equal(new Uri("https://api.openai.com/v1/"), provider.BaseUri);
        Assert.True(OpenAIConnection.IsOfficial(new Uri("https://API.openai.com/v1/")));
        Assert.False(OpenAIConnection.IsOfficial(new Uri("http://localhost:8000/v1/")));
        using var noTimeout = new OpenAICompatibleProvider(new OpenAIOptions { BaseUrl = "http://localhost:8080/v1" }, timeout: Timeout.InfiniteTimeSpan);
        Assert.Equal(new Uri("http://localhost:8080/v1/"), noTimeout.BaseUri);
        Assert.Throws<ArgumentOutOfRangeException>(() => new OpenAICompatibleProvider(new OpenAIOptions(), timeout: TimeSpan.Zero));
    }

    /// <summary>Sends every request to the fake server, keeping the path, and remembers the URLs asked for.</summary>
    private sealed class RedirectHandler(Uri target) : DelegatingHandler(new SocketsHttpHandler())
    {
        public List<string> Seen { get; } = [];

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Seen.Add(request.RequestUri!.ToString());
            request.RequestUri = new Uri(target, request.RequestUri.PathAndQuery);
            return base.SendAsync(request, cancellationToken);
        }
    }
}

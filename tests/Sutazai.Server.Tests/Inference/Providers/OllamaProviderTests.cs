using Microsoft.Extensions.AI;
using Sutazai.Inference.Providers;
using Sutazai.Inference.Tests.Fakes;
using static Sutazai.Inference.Tests.TestHelpers;

namespace Sutazai.Inference.Tests;

public sealed class OllamaProviderTests : IAsyncLifetime
{
    private static readonly ChatMessage[] Hello = [new(ChatRole.User, "Say hello")];

    private FakeOllamaServer _server = null!;
    private OllamaProvider _provider = null!;

    public async Task InitializeAsync()
    {
        _server = await FakeOllamaServer.StartNewAsync();
        _provider = new OllamaProvider(new OllamaOptions { Url = _server.Root.ToString(), Timeout = TimeSpan.FromSeconds(30) });
    }

    public async Task DisposeAsync()
    {
        _provider.Dispose();
        await _server.DisposeAsync();
    }

    private string Url => _server.Root.ToString().TrimEnd('/');

    [Fact]
    public async Task ListModels_maps_tags_details_show_context_length_and_ps_loaded_state()
    {
        var models = await _provider.ListModelsAsync(CancellationToken.None);

        Assert.Equal(
            [
                new ModelInfo("llama3.2:1b", "ollama", 1321098329, 131072, "llama", "Q8_0", true),
                new ModelInfo("qwen2.5:0.5b", "ollama", 397821319, 32768, "qwen2", "Q4_K_M", false),
            ],
            models);
        Assert.Equal("ollama", _provider.Name);
        _server.Single("GET", "/api/tags");
        _server.Single("GET", "/api/ps");
        Assert.Equal(
            ["llama3.2:1b", "qwen2.5:0.5b"],
            _server.Requests.Where(r => r.Path == "/api/show").Select(r => (string)r.Json["model"]!).Order(StringComparer.Ordinal));
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

        var updates = await CollectAsync(_provider.GetChatClient(FakeOllamaServer.Llama).GetStreamingResponseAsync(Hello, options));

        var body = _server.Single("POST", "/api/chat").Json;
        Assert.Equal("llama3.2:1b", (string?)body["model"]);
        Assert.True((bool?)body["stream"]);
        Assert.Equal("user", (string?)body["messages"]![0]!["role"]);
        Assert.Equal("Say hello", (string?)body["messages"]![0]!["content"]);
        var wire = body["options"]!.AsObject();
        Assert.Equal(["num_predict", "seed", "stop", "temperature", "top_k", "top_p"], Keys(wire));
        Assert.Equal(0.25, (double)wire["temperature"]!);
        Assert.Equal(0.9, (double)wire["top_p"]!);
        Assert.Equal(40, (int)wire["top_k"]!);
        Assert.Equal(1234, (int)wire["seed"]!);
        Assert.Equal(64, (int)wire["num_predict"]!);
        Assert.Equal(["</s>", "User:"], Strings(wire["stop"]));

        Assert.Equal(["Hello", " from", " llama"], Texts(updates));
        Assert.Equal(4, updates.Count); // three tokens + the done object
        var last = updates[^1];
        Assert.Equal(ChatFinishReason.Stop, last.FinishReason);
        AssertUsage(Usage(last), 12, 3, 15);
        var response = updates.ToChatResponse();
        Assert.Equal("Hello from llama", response.Text);
        AssertUsage(response.Usage!, 12, 3, 15);
    }

    [Fact]
    public async Task Non_streaming_chat_returns_text_usage_and_length_finish_reason()
    {
        var response = await _provider.GetChatClient(FakeOllamaServer.Llama)
            .GetResponseAsync(Hello, new ChatOptions { MaxOutputTokens = 2 });

        var body = _server.Single("POST", "/api/chat").Json;
        Assert.False((bool?)body["stream"]);
        Assert.Equal(2, (int)body["options"]!["num_predict"]!);
        Assert.Equal("Hello from", response.Text);
        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        AssertUsage(response.Usage!, 12, 2, 14);
    }

    [Fact]
    public async Task Streaming_chat_delivers_the_first_chunk_before_the_server_sends_the_rest()
    {
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _server.HoldAfterFirstChunk = hold;
        var enumerator = _provider.GetChatClient(FakeOllamaServer.Llama).GetStreamingResponseAsync(Hello).GetAsyncEnumerator();
        try
        {
            Assert.True(await enumerator.MoveNextAsync().AsTask().WaitAsync(Patience));
            Assert.Equal("Hello", enumerator.Current.Text);
            Assert.Equal(1, _server.ChunksSent);

            hold.SetResult();
            var rest = new List<string>();
            while (await enumerator.MoveNextAsync())
            {
                rest.Add(enumerator.Current.Text);
            }

            Assert.Equal([" from", " llama", ""], rest);
            Assert.Equal(4, _server.ChunksSent);
        }
        finally
        {
            await enumerator.DisposeAsync();
        }
    }

    [Fact]
    public async Task Cancelling_a_chat_stream_stops_reading_and_aborts_the_connection()
    {
        var client = _provider.GetChatClient(FakeOllamaServer.Llama);

        var received = await CancelAfterFirstUpdateAsync(ct => client.GetStreamingResponseAsync(Hello, null, ct), _server);

        Assert.Equal(["Hello"], Texts(received));
    }

    [Fact]
    public async Task Raw_completion_posts_generate_with_raw_true_and_streams_text_then_usage()
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

        var updates = await CollectAsync(_provider.CompleteAsync(FakeOllamaServer.Llama, "The quick brown fox", options, CancellationToken.None));

        var body = _server.Single("POST", "/api/generate").Json;
        // OllamaSharp 5.5.2 also writes its request's CustomHeaders (an empty object, which Ollama ignores).
        Assert.Equal(["CustomHeaders", "model", "options", "prompt", "raw", "stream"], Keys(body));
        Assert.Empty(body["CustomHeaders"]!.AsObject());
        Assert.Equal("llama3.2:1b", (string?)body["model"]);
        Assert.Equal("The quick brown fox", (string?)body["prompt"]);
        Assert.True((bool?)body["raw"]);
        Assert.True((bool?)body["stream"]);
        var wire = body["options"]!.AsObject();
        Assert.Equal(["num_predict", "seed", "stop", "temperature", "top_k", "top_p"], Keys(wire));
        Assert.Equal(0.5, (double)wire["temperature"]!);
        Assert.Equal(0.95, (double)wire["top_p"]!);
        Assert.Equal(20, (int)wire["top_k"]!);
        Assert.Equal(42, (int)wire["seed"]!);
        Assert.Equal(16, (int)wire["num_predict"]!);
        Assert.Equal(["\n"], Strings(wire["stop"]));

        Assert.Equal(6, updates.Count);
        Assert.Equal([" jumps", " over", " the", " lazy", " dog"], updates.Take(5).Select(u => u.Text));
        Assert.All(updates.Take(5), u => Assert.Null(u.FinishReason));
        var last = updates[^1];
        Assert.Equal("", last.Text);
        Assert.Equal(ChatFinishReason.Stop, last.FinishReason);
        AssertUsage(Usage(last), 12, 5, 17);
        Assert.Equal("llama3.2:1b", last.ModelId);
    }

    [Fact]
    public async Task Raw_completion_reports_length_when_num_predict_cuts_it()
    {
        var updates = await CollectAsync(_provider.CompleteAsync(
            FakeOllamaServer.Qwen, "Once upon a time", new ChatOptions { MaxOutputTokens = 2 }, CancellationToken.None));

        Assert.Equal([" jumps", " over"], Texts(updates));
        Assert.Equal(3, updates.Count);
        Assert.Equal(ChatFinishReason.Length, updates[^1].FinishReason);
        AssertUsage(Usage(updates[^1]), 12, 2, 14);
    }

    [Fact]
    public async Task Ollama_options_in_AdditionalProperties_reach_chat_and_generate()
    {
        var options = new ChatOptions { AdditionalProperties = new() { ["num_ctx"] = 8192, ["repeat_penalty"] = 1.1f } };

        await _provider.GetChatClient(FakeOllamaServer.Llama).GetResponseAsync(Hello, options);
        await CollectAsync(_provider.CompleteAsync(FakeOllamaServer.Llama, "x", options, CancellationToken.None));

        foreach (var path in (string[])["/api/chat", "/api/generate"])
        {
            var wire = _server.Single("POST", path).Json["options"]!.AsObject();
            Assert.Equal(8192, (int)wire["num_ctx"]!);
            Assert.Equal(1.1, (double)wire["repeat_penalty"]!, 6);
        }
    }

    [Fact]
    public async Task Cancelling_a_raw_completion_stops_reading_and_aborts_the_connection()
    {
        var received = await CancelAfterFirstUpdateAsync(
            ct => _provider.CompleteAsync(FakeOllamaServer.Llama, "The quick brown fox", null, ct), _server);

        Assert.Equal([" jumps"], Texts(received));
    }

    [Fact]
    public async Task Server_error_throws_InferenceUnavailableException_with_the_server_text()
    {
        _server.FailWithStatus = 500;

        var fromChat = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => _provider.GetChatClient(FakeOllamaServer.Llama).GetResponseAsync(Hello));
        var fromList = await Assert.ThrowsAsync<InferenceUnavailableException>(() => _provider.ListModelsAsync(CancellationToken.None));
        var fromCompletion = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => CollectAsync(_provider.CompleteAsync(FakeOllamaServer.Llama, "x", null, CancellationToken.None)));

        Assert.Equal($"Ollama at {Url} failed (HTTP 500 Internal Server Error for /api/chat): llama runner process has terminated: signal: killed", fromChat.Message);
        Assert.Equal($"Ollama at {Url} failed (HTTP 500 Internal Server Error for /api/tags): llama runner process has terminated: signal: killed", fromList.Message);
        Assert.Equal($"Ollama at {Url} failed (HTTP 500 Internal Server Error for /api/generate): llama runner process has terminated: signal: killed", fromCompletion.Message);
    }

    [Fact]
    public async Task Error_line_mid_stream_is_reported_not_swallowed()
    {
        _server.ErrorLineAfterFirstChunk = "CUDA error: out of memory";

        var fromCompletion = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => CollectAsync(_provider.CompleteAsync(FakeOllamaServer.Llama, "x", null, CancellationToken.None)));
        var fromChat = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => CollectAsync(_provider.GetChatClient(FakeOllamaServer.Llama).GetStreamingResponseAsync(Hello)));

        // OllamaSharp skips error lines; the stream wrapper on its HTTP (CancellableContent) reports them, for chat too.
        Assert.Equal($"Ollama at {Url} failed while generating with model 'llama3.2:1b': CUDA error: out of memory", fromCompletion.Message);
        Assert.Equal($"Ollama at {Url} failed while generating with model 'llama3.2:1b': CUDA error: out of memory", fromChat.Message);
    }

    [Fact]
    public async Task Stream_that_ends_without_done_throws()
    {
        _server.OmitDone = true;

        var fromChat = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => CollectAsync(_provider.GetChatClient(FakeOllamaServer.Llama).GetStreamingResponseAsync(Hello)));
        var fromCompletion = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => CollectAsync(_provider.CompleteAsync(FakeOllamaServer.Llama, "x", null, CancellationToken.None)));

        Assert.Contains("ended the stream for model 'llama3.2:1b' before it finished", fromChat.Message, StringComparison.Ordinal);
        Assert.Contains("ended the stream for model 'llama3.2:1b' before it finished", fromCompletion.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Slow_server_times_out_with_InferenceUnavailableException()
    {
        using var provider = new OllamaProvider(new OllamaOptions { Url = Url, Timeout = TimeSpan.FromMilliseconds(500) });
        _server.DelayBeforeReply = TimeSpan.FromSeconds(20);

        var fromChat = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => provider.GetChatClient(FakeOllamaServer.Llama).GetResponseAsync(Hello));
        var fromCompletion = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => CollectAsync(provider.CompleteAsync(FakeOllamaServer.Llama, "x", null, CancellationToken.None)));

        Assert.Equal($"Ollama at {Url} did not answer /api/chat within 0.5 s (Sutazai:Inference:Ollama:Timeout).", fromChat.Message);
        Assert.Equal($"Ollama at {Url} did not answer /api/generate within 0.5 s (Sutazai:Inference:Ollama:Timeout).", fromCompletion.Message);
    }

    [Fact]
    public async Task Health_reports_version_and_address()
    {
        var health = await _provider.CheckHealthAsync(CancellationToken.None);

        Assert.Equal(new ProviderHealth("ollama", true, $"Ollama 0.5.7 at {Url}"), health);
    }

    [Fact]
    public async Task Server_down_throws_InferenceUnavailableException_naming_the_url_and_health_says_unavailable()
    {
        var closed = FakeServer.ClosedPortRoot();
        var url = closed.ToString().TrimEnd('/');
        using var provider = new OllamaProvider(new OllamaOptions { Url = url });
        var prefix = $"Ollama at {url} is not reachable: Connection refused";

        var fromList = await Assert.ThrowsAsync<InferenceUnavailableException>(() => provider.ListModelsAsync(CancellationToken.None));
        var fromChat = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => provider.GetChatClient(FakeOllamaServer.Llama).GetResponseAsync(Hello));
        var fromStream = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => CollectAsync(provider.GetChatClient(FakeOllamaServer.Llama).GetStreamingResponseAsync(Hello)));
        var fromCompletion = await Assert.ThrowsAsync<InferenceUnavailableException>(
            () => CollectAsync(provider.CompleteAsync(FakeOllamaServer.Llama, "x", null, CancellationToken.None)));
        var health = await provider.CheckHealthAsync(CancellationToken.None);

        Assert.StartsWith(prefix, fromList.Message, StringComparison.Ordinal);
        Assert.StartsWith(prefix, fromChat.Message, StringComparison.Ordinal);
        Assert.StartsWith(prefix, fromStream.Message, StringComparison.Ordinal);
        Assert.StartsWith(prefix, fromCompletion.Message, StringComparison.Ordinal);
        Assert.EndsWith("Start it (`ollama serve`) or fix Sutazai:Inference:Ollama:Url.", fromList.Message, StringComparison.Ordinal);
        Assert.False(health.Available);
        Assert.Equal("ollama", health.Provider);
        Assert.StartsWith(prefix, health.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Probe_detects_ollama_and_rejects_closed_ports_and_other_servers()
    {
        using var http = new HttpClient();
        await using var openAI = await FakeOpenAIServer.StartNewAsync();

        Assert.True(await OllamaProvider.ProbeAsync(_server.Root, http, CancellationToken.None));
        Assert.False(await OllamaProvider.ProbeAsync(FakeServer.ClosedPortRoot(), http, CancellationToken.None));
        Assert.False(await OllamaProvider.ProbeAsync(openAI.Root, http, CancellationToken.None));
    }

    [Fact]
    public void Default_url_is_localhost_11434()
    {
        using var provider = new OllamaProvider(new OllamaOptions());

        Assert.Equal(new Uri("http://localhost:11434/"), provider.BaseUri);
        Assert.Throws<ArgumentException>(() => new OllamaProvider(new OllamaOptions { Url = "localhost:11434" }));
        using var noTimeout = new OllamaProvider(new OllamaOptions { Url = "http://gpu-box:11434/", Timeout = Timeout.InfiniteTimeSpan });
        Assert.Equal(new Uri("http://gpu-box:11434/"), noTimeout.BaseUri);
        Assert.Throws<ArgumentOutOfRangeException>(() => new OllamaProvider(new OllamaOptions { Timeout = TimeSpan.FromSeconds(-1) }));
    }

    private sealed class Recorder(Action<Sutazai.Inference.Pull.DownloadProgress> seen) : IProgress<Sutazai.Inference.Pull.DownloadProgress>
    {
        public List<Sutazai.Inference.Pull.DownloadProgress> Reports { get; } = [];

        public void Report(Sutazai.Inference.Pull.DownloadProgress value)
        {
            lock (Reports) Reports.Add(value);
            seen(value);
        }
    }

    [Fact]
    public async Task Pull_ReportsProgress_WhileOllamaIsStillSending()
    {
        // Ollama holds the stream after its first byte count until that count has been reported here: a pull that
        // read the whole response before reporting would never see it, and never end.
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _server.HoldAfterFirstChunk = gate;
        _server.HoldAfterChunk = 2;
        var progress = new Recorder(p =>
        {
            if (p.Bytes == 400) gate.TrySetResult();
        });
        var puller = new OllamaPuller(_ => Task.FromResult<OllamaProvider?>(_provider), () => new HttpClient());
        await puller.PullAsync("tinyllama:1.1b", progress, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal([(400L, 1000L), (1000L, 1000L)], progress.Reports.Select(r => (r.Bytes, r.TotalBytes!.Value)));
        Assert.True(gate.Task.IsCompleted);
    }
}

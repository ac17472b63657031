using Sutazai.Inference.Providers;
using Sutazai.Inference.Tests.Fakes;

namespace Sutazai.Inference.Tests;

/// <summary>IEmbeddingProvider over Ollama's /api/embed and an OpenAI-compatible /embeddings.</summary>
public sealed class EmbeddingProviderTests : IAsyncLifetime
{
    private FakeOllamaServer _ollama = null!;
    private FakeOpenAIServer _openai = null!;
    private OllamaProvider _ollamaProvider = null!;
    private OpenAICompatibleProvider _openaiProvider = null!;

    public async Task InitializeAsync()
    {
        _ollama = await FakeOllamaServer.StartNewAsync();
        _openai = await FakeOpenAIServer.StartNewAsync();
        _ollamaProvider = new OllamaProvider(new OllamaOptions { Url = _ollama.Root.ToString(), Timeout = TimeSpan.FromSeconds(30) });
        _openaiProvider = new OpenAICompatibleProvider(new OpenAIOptions { BaseUrl = _openai.BaseUrl, ApiKey = "sk-upstream" }, timeout: TimeSpan.FromSeconds(30));
    }

    public async Task DisposeAsync()
    {
        _ollamaProvider.Dispose();
        _openaiProvider.Dispose();
        await _ollama.DisposeAsync();
        await _openai.DisposeAsync();
    }

    [Fact]
    public async Task Ollama_EmbedsEveryInputInOneCall()
    {
        var result = await _ollamaProvider.EmbedAsync(FakeOllamaServer.Llama, ["abc", "Zebra"], CancellationToken.None);
        Assert.Equal([FakeOllamaServer.EmbeddingOf("abc"), FakeOllamaServer.EmbeddingOf("Zebra")], result.Embeddings);
        Assert.Equal(8, result.InputTokens);
        var request = _ollama.Single("POST", "/api/embed").Json;
        Assert.Equal(FakeOllamaServer.Llama, (string?)request["model"]);
        Assert.Equal(["abc", "Zebra"], request["input"]!.AsArray().Select(i => (string?)i));
    }

    [Fact]
    public async Task Ollama_ModelWithoutEmbeddings_AndUnknownModel_AreTold()
    {
        var unsupported = await Assert.ThrowsAsync<EmbeddingsNotSupportedException>(() => _ollamaProvider.EmbedAsync(FakeOllamaServer.Qwen, ["x"], CancellationToken.None));
        Assert.Equal($"Ollama model '{FakeOllamaServer.Qwen}' does not support embeddings.", unsupported.Message);
        var missing = await Assert.ThrowsAsync<ModelNotFoundException>(() => _ollamaProvider.EmbedAsync("nope:1b", ["x"], CancellationToken.None));
        Assert.Equal("nope:1b", missing.ModelId);
    }

    [Fact]
    public async Task OpenAICompatible_EmbedsInInputOrder_WithUsageAndKey()
    {
        var result = await _openaiProvider.EmbedAsync(FakeOpenAIServer.Qwen, ["first", "second!", "3"], CancellationToken.None);
        Assert.Equal([FakeOpenAIServer.EmbeddingOf("first"), FakeOpenAIServer.EmbeddingOf("second!"), FakeOpenAIServer.EmbeddingOf("3")], result.Embeddings);
        Assert.Equal(7, result.InputTokens);
        var request = _openai.Single("POST", "/v1/embeddings");
        Assert.Equal("Bearer sk-upstream", request.Authorization);
        Assert.Equal("float", (string?)request.Json["encoding_format"]);
        Assert.Equal(["first", "second!", "3"], request.Json["input"]!.AsArray().Select(i => (string?)i));
    }

    [Fact]
    public async Task OpenAICompatible_ServerWithoutEmbeddings_AndUnknownModel_AreTold()
    {
        var unsupported = await Assert.ThrowsAsync<EmbeddingsNotSupportedException>(() => _openaiProvider.EmbedAsync(FakeOpenAIServer.Llama, ["x"], CancellationToken.None));
        Assert.Contains("does not support embeddings", unsupported.Message);
        var missing = await Assert.ThrowsAsync<ModelNotFoundException>(() => _openaiProvider.EmbedAsync("gpt-nope", ["x"], CancellationToken.None));
        Assert.Equal("gpt-nope", missing.ModelId);
    }
}

using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Inference.LlamaCpp;
using Sutazai.Inference.Providers;
using Sutazai.Inference.Tests.Fakes;
using Sutazai.Server.Tests.Infrastructure;
using static Sutazai.Inference.Tests.TestHelpers;

namespace Sutazai.Inference.Tests;

/// <summary>
/// What every <see cref="IModelProvider"/> promises the rest of the server, whatever the backend: its models are listed
/// under its own name, chat streams the reply in pieces and ends with a finish reason and usage, the whole answer equals
/// the streamed one, a token limit cuts the reply with <c>length</c>, raw completion continues a prompt, and an unknown
/// model is <see cref="ModelNotFoundException"/> on every path. Run against llama.cpp in-process (the tiny
/// deterministic GGUF), Ollama and an OpenAI-compatible server (their fakes); the provider test classes keep what is
/// particular to each (wire format, errors of that server, timeouts, cancellation on the connection).
/// </summary>
public abstract class ModelProviderContractTests
{
    private static readonly ChatMessage[] Hello = [new(ChatRole.User, "Say hello")];

    protected abstract IModelProvider Provider { get; }

    protected abstract string ProviderName { get; }

    protected abstract string Model { get; }

    /// <summary>The whole reply to <c>Say hello</c>, and its first two tokens.</summary>
    protected abstract string ChatReply { get; }

    protected abstract string FirstTwoTokens { get; }

    protected abstract string CompletionPrompt { get; }

    protected abstract string Completion { get; }

    private static void AssertUsageAddsUp(UsageDetails? usage)
    {
        Assert.NotNull(usage);
        Assert.True(usage.InputTokenCount > 0, "input tokens");
        Assert.True(usage.OutputTokenCount > 0, "output tokens");
        Assert.Equal(usage.InputTokenCount + usage.OutputTokenCount, usage.TotalTokenCount);
    }

    [Fact]
    public async Task ListModels_HasTheModel_UnderTheProvidersName_WithItsContext()
    {
        Assert.Equal(ProviderName, Provider.Name);
        var model = Assert.Single(await Provider.ListModelsAsync(CancellationToken.None), m => m.Id == Model);
        Assert.Equal(ProviderName, model.Provider);
        Assert.True(model.ContextLength > 0, $"context length {model.ContextLength}");
    }

    [Fact]
    public async Task StreamingChat_ComesInPieces_ThenAFinishReasonAndUsage()
    {
        var updates = await CollectAsync(Provider.GetChatClient(Model).GetStreamingResponseAsync(Hello));
        Assert.True(Texts(updates).Length > 1, string.Join("|", Texts(updates)));
        Assert.Equal(ChatReply, string.Concat(Texts(updates)));
        Assert.Equal(ChatFinishReason.Stop, updates.Last(u => u.FinishReason is not null).FinishReason);
        AssertUsageAddsUp(updates.ToChatResponse().Usage);
    }

    [Fact]
    public async Task WholeChatAnswer_EqualsTheStreamedOne()
    {
        var response = await Provider.GetChatClient(Model).GetResponseAsync(Hello);
        Assert.Equal(ChatReply, response.Text);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
        AssertUsageAddsUp(response.Usage);
    }

    [Fact]
    public async Task ATokenLimit_CutsTheReply_WithLength()
    {
        var response = await Provider.GetChatClient(Model).GetResponseAsync(Hello, new ChatOptions { MaxOutputTokens = 2 });
        Assert.Equal(FirstTwoTokens, response.Text);
        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(2, response.Usage!.OutputTokenCount);
    }

    [Fact]
    public async Task RawCompletion_ContinuesThePrompt_ThenAFinishReasonAndUsage()
    {
        var updates = await CollectAsync(Provider.CompleteAsync(Model, CompletionPrompt, null, CancellationToken.None));
        Assert.Equal(Completion, string.Concat(Texts(updates)));
        var last = updates[^1];
        Assert.Equal(ChatFinishReason.Stop, last.FinishReason);
        AssertUsageAddsUp(Usage(last));
    }

    [Fact]
    public async Task UnknownModel_IsModelNotFound_OnEveryPath()
    {
        const string unknown = "no-such-model-anywhere";
        var client = Provider.GetChatClient(unknown);
        Assert.Equal(unknown, (await Assert.ThrowsAsync<ModelNotFoundException>(() => client.GetResponseAsync(Hello))).ModelId);
        Assert.Equal(unknown, (await Assert.ThrowsAsync<ModelNotFoundException>(() => CollectAsync(client.GetStreamingResponseAsync(Hello)))).ModelId);
        Assert.Equal(unknown, (await Assert.ThrowsAsync<ModelNotFoundException>(() => CollectAsync(Provider.CompleteAsync(unknown, "x", null, CancellationToken.None)))).ModelId);
    }

    [Fact]
    public async Task Health_IsAvailable_UnderTheProvidersName()
    {
        var health = await Provider.CheckHealthAsync(CancellationToken.None);
        Assert.True(health.Available, health.Detail);
        Assert.Equal(ProviderName, health.Provider);
    }
}

public sealed class LlamaCppProviderContractTests(ModelAppFixture fixture) : ModelProviderContractTests, IClassFixture<ModelAppFixture>
{
    protected override IModelProvider Provider => fixture.App.Services.GetRequiredService<LlamaCppProvider>();

    protected override string ProviderName => "llamacpp";

    protected override string Model => ModelAppFixture.ModelId;

    protected override string ChatReply => DeterministicModelSpec.DefaultExpectations.ChatReply;

    protected override string FirstTwoTokens => "Hello!";

    protected override string CompletionPrompt => DeterministicModelSpec.DefaultExpectations.OncePrompt;

    protected override string Completion => DeterministicModelSpec.DefaultExpectations.OnceCompletion;
}

public sealed class OllamaProviderContractTests : ModelProviderContractTests, IAsyncLifetime
{
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

    protected override IModelProvider Provider => _provider;

    protected override string ProviderName => "ollama";

    protected override string Model => FakeOllamaServer.Llama;

    protected override string ChatReply => "Hello from llama";

    protected override string FirstTwoTokens => "Hello from";

    protected override string CompletionPrompt => "The quick brown fox";

    protected override string Completion => string.Concat(FakeOllamaServer.GenerateTokens);
}

public sealed class OpenAICompatibleProviderContractTests : ModelProviderContractTests, IAsyncLifetime
{
    private FakeOpenAIServer _server = null!;
    private OpenAICompatibleProvider _provider = null!;

    public async Task InitializeAsync()
    {
        _server = await FakeOpenAIServer.StartNewAsync();
        _provider = new OpenAICompatibleProvider(new OpenAIOptions { BaseUrl = _server.BaseUrl }, timeout: TimeSpan.FromSeconds(30));
    }

    public async Task DisposeAsync()
    {
        _provider.Dispose();
        await _server.DisposeAsync();
    }

    protected override IModelProvider Provider => _provider;

    protected override string ProviderName => "openai";

    // The vLLM-style model: it reports max_model_len (a plain OpenAI model list has no context length at all).
    protected override string Model => FakeOpenAIServer.Qwen;

    protected override string ChatReply => string.Concat(FakeOpenAIServer.ChatTokens);

    protected override string FirstTwoTokens => "Hi there";

    protected override string CompletionPrompt => "The quick brown fox";

    protected override string Completion => string.Concat(FakeOpenAIServer.CompletionTokens);
}

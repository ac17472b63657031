using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using OpenAI;
using OpenAI.Chat;
using Sutazai.Server.Tests.Infrastructure;
using Expect = Sutazai.TestSupport.DeterministicModelSpec.DefaultExpectations;

namespace Sutazai.Server.Tests.OpenAICompatible;

/// <summary>The server on a real Kestrel port with the tiny model, an admin and an API key for the SDK.</summary>
public sealed class KestrelModelAppFixture : IAsyncLifetime
{
    public TestApp App { get; private set; } = null!;

    public Uri BaseAddress { get; private set; } = null!;

    public string ApiKey { get; private set; } = "";

    public async Task InitializeAsync()
    {
        App = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?>
        {
            ["Sutazai:Inference:LlamaCpp:ContextSize"] = "4096",
            ["Sutazai:Inference:LlamaCpp:KeepAlive"] = "-00:00:01",
            ["Sutazai:Inference:Ollama:AutoDetect"] = "false",
        });
        ModelAppFixture.WriteModel(App.DataDir);
        BaseAddress = App.StartKestrel();
        using var http = new HttpClient { BaseAddress = BaseAddress };
        var admin = await Accounts.RegisterAsync(http);
        var tokens = await Accounts.LoginAsync(http, admin.Username);
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", tokens.AccessToken);
        var created = await http.PostAsJsonAsync("/api/v1/keys", new { name = "openai sdk" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        ApiKey = (await created.ReadJsonAsync()).GetProperty("key").GetString()!;
    }

    public async Task DisposeAsync() => await App.DisposeAsync();
}

/// <summary>The official OpenAI .NET SDK against /v1 over a real socket, with an sk-sz- key.</summary>
public sealed class OpenAISdkTests(KestrelModelAppFixture fixture) : IClassFixture<KestrelModelAppFixture>
{
    private const string Model = ModelAppFixture.ModelId;

    private OpenAIClient Client(string? key = null) => new(new ApiKeyCredential(key ?? fixture.ApiKey), new OpenAIClientOptions
    {
        Endpoint = new Uri(fixture.BaseAddress, "/v1"),
    });

    private static readonly ChatMessage[] Conversation = [new SystemChatMessage("Be brief."), new UserChatMessage("Hi there")];

    [Fact]
    public async Task CompleteChat_ReturnsTheExactReply()
    {
        var chat = Client().GetChatClient(Model);
        ChatCompletion completion = await chat.CompleteChatAsync(Conversation, new ChatCompletionOptions { Temperature = 0 });
        Assert.Equal(Expect.ChatReply, Assert.Single(completion.Content).Text);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal(Model, completion.Model);
        Assert.StartsWith("chatcmpl-", completion.Id);
        Assert.Equal(Expect.ChatReplyTokens, completion.Usage.OutputTokenCount);
        Assert.Equal(completion.Usage.InputTokenCount + Expect.ChatReplyTokens, completion.Usage.TotalTokenCount);

        ChatCompletion cut = await chat.CompleteChatAsync(Conversation, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 3 });
        Assert.Equal("Hello! How", cut.Content[0].Text);
        Assert.Equal(ChatFinishReason.Length, cut.FinishReason);
    }

    [Fact]
    public async Task CompleteChatStreaming_StreamsTheExactReply_TokenByToken()
    {
        var chat = Client().GetChatClient(Model);
        var text = new StringBuilder();
        var pieces = 0;
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        await foreach (var update in chat.CompleteChatStreamingAsync(Conversation, new ChatCompletionOptions { Temperature = 0 }))
        {
            foreach (var part in update.ContentUpdate)
            {
                if (part.Text.Length > 0) pieces++;
                text.Append(part.Text);
            }
            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }
        Assert.Equal(Expect.ChatReply, text.ToString());
        Assert.Equal(Expect.ChatReplyTokens, pieces);
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.NotNull(usage);
        Assert.Equal(Expect.ChatReplyTokens, usage.OutputTokenCount);
    }

    [Fact]
    public async Task GetModels_ListsTheModel()
    {
        var models = await Client().GetOpenAIModelClient().GetModelsAsync();
        var model = Assert.Single(models.Value);
        Assert.Equal(Model, model.Id);
        Assert.Equal("llamacpp", model.OwnedBy);
    }

    [Fact]
    public async Task GenerateEmbeddings_GivesTheModelsWidth_AndIdenticalVectorsForIdenticalInput()
    {
        var embeddings = Client().GetEmbeddingClient(Model);
        var first = (await embeddings.GenerateEmbeddingAsync("Once upon a time")).Value.ToFloats().ToArray();
        var again = (await embeddings.GenerateEmbeddingAsync("Once upon a time")).Value.ToFloats().ToArray();
        var other = (await embeddings.GenerateEmbeddingAsync("Hello! How can I help you?")).Value.ToFloats().ToArray();
        Assert.Equal(320, first.Length);
        Assert.Equal(first, again);
        Assert.NotEqual(first, other);

        var batch = (await embeddings.GenerateEmbeddingsAsync(["Once upon a time", "Hello! How can I help you?"])).Value;
        Assert.Equal([0, 1], batch.Select(e => e.Index));
        Assert.Equal(first, batch[0].ToFloats().ToArray());
        Assert.Equal(other, batch[1].ToFloats().ToArray());
    }

    [Fact]
    public async Task ErrorsArriveAsClientResultExceptions_WithOpenAIsStatusCodes()
    {
        var unauthorized = await Assert.ThrowsAsync<ClientResultException>(() =>
            Client("sk-sz-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").GetChatClient(Model).CompleteChatAsync(Conversation));
        Assert.Equal(401, unauthorized.Status);
        Assert.Contains("The API key is not valid.", unauthorized.Message);

        var missing = await Assert.ThrowsAsync<ClientResultException>(() => Client().GetChatClient("no-such-model").CompleteChatAsync(Conversation));
        Assert.Equal(404, missing.Status);
        Assert.Contains("model_not_found", missing.Message);
    }
}

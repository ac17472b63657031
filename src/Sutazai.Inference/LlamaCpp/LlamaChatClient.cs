using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Sutazai.Inference.LlamaCpp;

/// <summary><see cref="IChatClient"/> over a model the in-process llama.cpp engine runs.</summary>
internal sealed class LlamaChatClient(LlamaCppProvider provider, string modelId) : IChatClient
{
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        await GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var loaded = await provider.GetEngineAsync(modelId, cancellationToken);
        var prompt = ChatPrompt.Render(loaded.Engine.Weights, messages, options?.Instructions, loaded.File.ChatTemplate is not null);
        var tokens = loaded.Engine.Tokenize(prompt, addBos: true);
        await foreach (var update in provider.StreamAsync(loaded.Engine, tokens, options, cancellationToken))
            yield return update;
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType == typeof(ChatClientMetadata) ? new ChatClientMetadata("llamacpp", null, modelId)
        : serviceKey is null && serviceType.IsInstanceOfType(this) ? this
        : null;

    public void Dispose()
    {
    }
}

using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using ChatCompletionOptions = OpenAI.Chat.ChatCompletionOptions;

namespace Sutazai.Inference.Providers;

/// <summary>
/// The <see cref="IChatClient"/> handed out by <see cref="OpenAICompatibleProvider.GetChatClient"/>: the
/// Microsoft.Extensions.AI OpenAI adapter (temperature, top_p, seed, max_completion_tokens, stop, penalties), plus, for
/// self-hosted servers, <c>top_k</c> and a <c>max_tokens</c> twin written into the request body through the OpenAI
/// SDK's JSON patch; SDK exceptions become <see cref="InferenceUnavailableException"/> / <see cref="ModelNotFoundException"/>.
/// </summary>
internal sealed class OpenAICompatibleChatClient(IChatClient inner, OpenAIConnection connection, string modelId) : DelegatingChatClient(inner)
{
    private const string ChatPath = "chat/completions";

    public override async Task<ChatResponse> GetResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        try
        {
            return await base.GetResponseAsync(messages, Prepare(options), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (connection.Translate(ex, ChatPath, options?.ModelId ?? modelId, cancellationToken) is { } translated)
        {
            throw translated;
        }
    }

    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var model = options?.ModelId ?? modelId;
        await foreach (var update in ProviderHttp.GuardStreamAsync(
            base.GetStreamingResponseAsync(messages, Prepare(options), cancellationToken),
            ex => connection.Translate(ex, ChatPath, model, cancellationToken),
            update => update.FinishReason is not null,
            () => connection.EndedEarly(model),
            cancellationToken).ConfigureAwait(false))
        {
            yield return update;
        }
    }

    /// <summary>Adds <c>top_k</c> and <c>max_tokens</c> to the wire request for servers other than api.openai.com.</summary>
    private ChatOptions? Prepare(ChatOptions? options)
    {
        if (options is null || connection.IsOfficialOpenAI || (options.TopK is null && options.MaxOutputTokens is null))
        {
            return options;
        }

        var topK = options.TopK;
        var maxTokens = options.MaxOutputTokens;
        var callerFactory = options.RawRepresentationFactory;
        var prepared = options.Clone();
        prepared.RawRepresentationFactory = client =>
        {
            var completionOptions = callerFactory?.Invoke(client) as ChatCompletionOptions ?? new ChatCompletionOptions();
#pragma warning disable SCME0001 // JsonPatch is marked experimental in System.ClientModel 1.15; it is how the SDK sends extra body fields.
            if (topK is { } k)
            {
                completionOptions.Patch.Set("$.top_k"u8, k);
            }

            if (maxTokens is { } m)
            {
                // The adapter writes max_completion_tokens; llama-server and older vLLM read max_tokens.
                completionOptions.Patch.Set("$.max_tokens"u8, m);
            }
#pragma warning restore SCME0001
            return completionOptions;
        };
        return prepared;
    }
}

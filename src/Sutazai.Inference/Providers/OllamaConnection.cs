using System.Net;
using Microsoft.Extensions.AI;
using OllamaSharp;
using OllamaSharp.Models;
using OllamaSharp.Models.Chat;
using OllamaSharp.Models.Exceptions;

namespace Sutazai.Inference.Providers;

/// <summary>One Ollama server: the shared <see cref="HttpClient"/> plus the error mapping every request goes through.</summary>
internal sealed class OllamaConnection(HttpClient http, Uri baseUri, TimeSpan timeout)
{
    internal HttpClient Http { get; } = http;

    internal Uri BaseUri { get; } = baseUri;

    internal string Display { get; } = ProviderHttp.Display(baseUri);

    /// <summary>
    /// Sends a request and turns failures into <see cref="InferenceUnavailableException"/> or
    /// <see cref="ModelNotFoundException"/>. Returns only successful responses.
    /// </summary>
    internal async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, HttpCompletionOption completion, string? modelId, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            response = await Http.SendAsync(request, completion, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw Unreachable(ex);
        }
        catch (TaskCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new InferenceUnavailableException(
                $"Ollama at {Display} did not answer {request.RequestUri?.AbsolutePath} within {ProviderHttp.TimeoutText(timeout)} (Sutazai:Inference:Ollama:Timeout).", ex);
        }

        if (response.IsSuccessStatusCode)
        {
            return response;
        }

        using (response)
        {
            var error = await ProviderHttp.ReadErrorTextAsync(response, cancellationToken).ConfigureAwait(false);
            if (response.StatusCode == HttpStatusCode.NotFound && !string.IsNullOrEmpty(modelId)
                && error.Contains("not found", StringComparison.OrdinalIgnoreCase))
            {
                // Ollama: 404 {"error":"model \"x\" not found, try pulling it first"}.
                throw new ModelNotFoundException(modelId);
            }

            var what = (int)response.StatusCode >= 500 ? "failed" : "rejected the request";
            throw new InferenceUnavailableException(
                $"Ollama at {Display} {what} ({ProviderHttp.StatusText(response.StatusCode, response.ReasonPhrase)} for {request.RequestUri?.AbsolutePath}): {error}");
        }
    }

    internal InferenceUnavailableException Unreachable(Exception ex) =>
        new($"Ollama at {Display} is not reachable: {ProviderHttp.Describe(ex)}. Start it (`ollama serve`) or fix Sutazai:Inference:Ollama:Url.", ex);

    internal InferenceUnavailableException Dropped(string modelId, Exception ex) =>
        new($"Ollama at {Display} dropped the connection while answering with model '{modelId}': {ProviderHttp.Describe(ex)}", ex);

    internal InferenceUnavailableException EndedEarly(string modelId) =>
        new($"Ollama at {Display} ended the stream for model '{modelId}' before it finished (no final \"done\" message); the server failed mid-answer or sent an error line.");
}

/// <summary>
/// OllamaSharp's client with every HTTP call routed through <see cref="OllamaConnection.SendAsync"/>, so errors map to
/// the Sutazai exceptions (with the server's error text, which OllamaSharp drops for non-400 statuses) and streamed
/// bodies observe cancellation.
/// </summary>
internal sealed class OllamaWireClient(OllamaConnection connection, string modelId) : OllamaApiClient(connection.Http, modelId)
{
    protected override async Task<HttpResponseMessage> SendToOllamaAsync(
        HttpRequestMessage requestMessage, OllamaRequest? ollamaRequest, HttpCompletionOption completionOption, CancellationToken cancellationToken)
    {
        var requestModel = ollamaRequest switch
        {
            ChatRequest chat => chat.Model,
            GenerateRequest generate => generate.Model,
            ShowModelRequest show => show.Model,
            EmbedRequest embed => embed.Model,
            PullModelRequest pull => pull.Model,
            _ => null,
        };

        var response = await connection.SendAsync(requestMessage, completionOption, requestModel, cancellationToken).ConfigureAwait(false);
        if (completionOption == HttpCompletionOption.ResponseHeadersRead)
        {
            // A stream: every read observes the token, and an {"error": …} line fails it with Ollama's own text.
            var model = requestModel ?? SelectedModel;
            Func<string, Exception> errorLine = ollamaRequest is PullModelRequest
                ? error => new InferenceUnavailableException($"Ollama at {connection.Display} could not pull '{model}': {error}")
                : error => new InferenceUnavailableException($"Ollama at {connection.Display} failed while generating with model '{model}': {error}");
            response.Content = new CancellableContent(response.Content, cancellationToken, errorLine);
        }

        return response;
    }
}

/// <summary>
/// The <see cref="IChatClient"/> handed out by <see cref="OllamaProvider.GetChatClient"/>: OllamaSharp's mapping of
/// <see cref="ChatOptions"/> (temperature, top_p, top_k, seed, num_predict, stop, penalties, plus Ollama option names in
/// <see cref="ChatOptions.AdditionalProperties"/>) and of usage, with OllamaSharp's own exceptions translated and a
/// stream that ends without Ollama's final <c>done</c> line reported instead of passing for a complete answer.
/// </summary>
internal sealed class OllamaChatClient(OllamaWireClient inner, OllamaConnection connection, string modelId) : DelegatingChatClient(inner)
{
    public override async Task<ChatResponse> GetResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        try
        {
            return await base.GetResponseAsync(messages, options, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (Translate(ex, options, cancellationToken) is { } translated)
        {
            throw translated;
        }
    }

    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var update in ProviderHttp.GuardStreamAsync(
            base.GetStreamingResponseAsync(messages, options, cancellationToken),
            ex => Translate(ex, options, cancellationToken),
            update => update.RawRepresentation is ChatResponseStream { Done: true },
            () => connection.EndedEarly(options?.ModelId ?? modelId),
            cancellationToken).ConfigureAwait(false))
        {
            yield return update;
        }
    }

    private Exception? Translate(Exception ex, ChatOptions? options, CancellationToken cancellationToken)
    {
        var model = options?.ModelId ?? modelId;
        return ex switch
        {
            InferenceUnavailableException or ModelNotFoundException => null,
            OperationCanceledException when cancellationToken.IsCancellationRequested => null,
            ModelDoesNotSupportToolsException => new InferenceUnavailableException($"Ollama model '{model}' does not support tool calling: {ex.Message}", ex),
            OllamaException => new InferenceUnavailableException($"Ollama at {connection.Display} rejected the request for model '{model}': {ex.Message}", ex),
            System.Text.Json.JsonException => new InferenceUnavailableException($"Ollama at {connection.Display} sent a line that is not valid Ollama JSON: {ex.Message}", ex),
            _ when ProviderHttp.IsTransportFailure(ex) => connection.Dropped(model, ex),
            _ => null,
        };
    }
}

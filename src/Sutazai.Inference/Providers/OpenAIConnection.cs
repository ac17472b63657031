using System.ClientModel;
using System.Net;

namespace Sutazai.Inference.Providers;

/// <summary>One OpenAI-compatible server: address, key and the error mapping shared by chat, raw completion and listing.</summary>
internal sealed class OpenAIConnection(Uri baseUri, string? apiKey, TimeSpan timeout)
{
    internal Uri BaseUri { get; } = baseUri;

    internal string Display { get; } = ProviderHttp.Display(baseUri);

    internal string? ApiKey { get; } = apiKey;

    internal TimeSpan Timeout { get; } = timeout;

    /// <summary>
    /// api.openai.com rejects fields outside its schema, so the non-standard <c>top_k</c> and the legacy
    /// <c>max_tokens</c> twin of <c>max_completion_tokens</c> are sent only to other (self-hosted) servers.
    /// </summary>
    internal bool IsOfficialOpenAI { get; } = IsOfficial(baseUri);

    internal static bool IsOfficial(Uri baseUri) => baseUri.Host.Equals("api.openai.com", StringComparison.OrdinalIgnoreCase);

    internal InferenceUnavailableException Unreachable(Exception ex) =>
        new($"The OpenAI-compatible server at {Display} is not reachable: {ProviderHttp.Describe(ex)}. Start it or fix Sutazai:Inference:OpenAI:BaseUrl.", ex);

    internal InferenceUnavailableException TimedOut(string path, Exception ex) =>
        new($"The OpenAI-compatible server at {Display} did not answer /{path} within {ProviderHttp.TimeoutText(Timeout)}.", ex);

    internal InferenceUnavailableException Dropped(string modelId, Exception ex) =>
        new($"The OpenAI-compatible server at {Display} dropped the connection while answering with model '{modelId}': {ProviderHttp.Describe(ex)}", ex);

    internal InferenceUnavailableException EndedEarly(string modelId) =>
        new($"The OpenAI-compatible server at {Display} ended the stream for model '{modelId}' before it finished (no finish_reason and no [DONE]).");

    /// <summary>Maps an HTTP error status (with the server's error text) to the Sutazai exceptions.</summary>
    internal Exception FromStatus(int status, string? reasonPhrase, string error, string path, string? modelId)
    {
        var statusText = ProviderHttp.StatusText((HttpStatusCode)status, reasonPhrase);
        var sentence = error.TrimEnd('.', ' ');
        if (status is 401 or 403)
        {
            return new InferenceUnavailableException(
                $"The OpenAI-compatible server at {Display} rejected the API key ({statusText}): {sentence}. Check Sutazai:Inference:OpenAI:ApiKey.");
        }

        if (status == 404 && LooksLikeMissingModel(error, modelId))
        {
            return new ModelNotFoundException(modelId!);
        }

        if (status == 404)
        {
            return new InferenceUnavailableException(
                $"The OpenAI-compatible server at {Display} has no /{path} ({statusText}): {sentence}. Sutazai:Inference:OpenAI:BaseUrl usually ends in /v1.");
        }

        var what = status >= 500 ? "failed" : "rejected the request";
        return new InferenceUnavailableException($"The OpenAI-compatible server at {Display} {what} ({statusText} for /{path}): {error}");
    }

    /// <summary>Maps an exception from the OpenAI SDK (System.ClientModel) or HttpClient; null when it should pass through.</summary>
    internal Exception? Translate(Exception ex, string path, string modelId, CancellationToken cancellationToken)
    {
        switch (ex)
        {
            case InferenceUnavailableException or ModelNotFoundException:
                return null;
            case OperationCanceledException when cancellationToken.IsCancellationRequested:
                return null;
            case OperationCanceledException:
                return TimedOut(path, ex);
            case ClientResultException { Status: 0 } clientResult:
                var cause = clientResult.InnerException ?? clientResult;
                return cause is IOException ? Dropped(modelId, cause) : Unreachable(cause);
            case ClientResultException clientResult:
                var raw = clientResult.GetRawResponse();
                var error = ProviderHttp.ErrorText(ReadContent(raw), raw?.ReasonPhrase);
                return FromStatus(clientResult.Status, raw?.ReasonPhrase, error, path, modelId);
            case HttpRequestException { StatusCode: null }:
                return Unreachable(ex);
            case IOException:
                return Dropped(modelId, ex);
            default:
                return null;
        }
    }

    private static string? ReadContent(System.ClientModel.Primitives.PipelineResponse? response)
    {
        if (response is null)
        {
            return null;
        }

        try
        {
            return response.Content.ToString();
        }
        catch (InvalidOperationException)
        {
            return null; // The body was streamed and not buffered; the status alone has to do.
        }
    }

    private static bool LooksLikeMissingModel(string error, string? modelId) =>
        !string.IsNullOrEmpty(modelId)
        && (error.Contains("model_not_found", StringComparison.OrdinalIgnoreCase)
            || (error.Contains("model", StringComparison.OrdinalIgnoreCase)
                && (error.Contains("not found", StringComparison.OrdinalIgnoreCase)
                    || error.Contains("does not exist", StringComparison.OrdinalIgnoreCase)
                    || error.Contains("not exist", StringComparison.OrdinalIgnoreCase))));

    internal void Authorize(HttpRequestMessage request)
    {
        if (!string.IsNullOrEmpty(ApiKey))
        {
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", ApiKey);
        }
    }
}

using OllamaSharp.Models;
using Sutazai.Inference.Pull;

namespace Sutazai.Inference.Providers;

/// <summary>
/// Forwards <c>POST /api/v1/models/pull</c> of an Ollama model name to Ollama's own <c>/api/pull</c> through
/// OllamaSharp's <c>PullModelAsync</c>, which reads the NDJSON progress (<c>{status, total, completed}</c> per layer)
/// line by line as Ollama writes it; each line becomes download progress.
/// </summary>
/// <param name="current">The Ollama server connected now (null when none); asked at every pull, since it can change at run time.</param>
/// <param name="createHttp">A client without a time limit for one pull (a pull takes as long as the download).</param>
public sealed class OllamaPuller(Func<CancellationToken, Task<OllamaProvider?>> current, Func<HttpClient> createHttp) : IOllamaPuller
{
    public async Task<bool> IsConfiguredAsync(CancellationToken ct) => await current(ct) is not null;

    public async Task PullAsync(string model, IProgress<DownloadProgress> progress, CancellationToken ct)
    {
        var provider = await current(ct) ?? throw new InferenceUnavailableException("No Ollama server is connected.");
        using var http = createHttp();
        http.BaseAddress = provider.BaseUri;
        using var client = new OllamaWireClient(new OllamaConnection(http, provider.BaseUri, http.Timeout), model);
        var started = DateTime.UtcNow;
        try
        {
            await foreach (var step in client.PullModelAsync(new PullModelRequest { Model = model, Stream = true }, ct).ConfigureAwait(false))
            {
                if (step is null) continue;
                if (step.Status == "success") return;
                if (step.Total > 0)
                {
                    var seconds = Math.Max(0.001, (DateTime.UtcNow - started).TotalSeconds);
                    progress.Report(new DownloadProgress(step.Completed, step.Total, step.Completed / seconds,
                        step.Status?.StartsWith("verifying", StringComparison.Ordinal) == true ? DownloadStatus.Verifying : DownloadStatus.Downloading));
                }
            }
        }
        catch (OllamaSharp.Models.Exceptions.OllamaException ex)
        {
            // An {"error": …} line mid-pull (unknown model, registry down).
            throw new InferenceUnavailableException($"Ollama could not pull '{model}': {ex.Message}", ex);
        }
        catch (ModelNotFoundException ex)
        {
            throw new InferenceUnavailableException($"Ollama could not pull '{model}': the registry has no such model.", ex);
        }

        throw new InferenceUnavailableException($"Ollama's pull of '{model}' ended without success.");
    }
}

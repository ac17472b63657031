using System.Net.Http.Json;
using System.Text.Json;
using Sutazai.Inference.Pull;

namespace Sutazai.Inference.Providers;

/// <summary>
/// Forwards <c>POST /api/v1/models/pull</c> of an Ollama model name to Ollama's own <c>/api/pull</c>, turning its
/// NDJSON progress (<c>{status, total, completed}</c> per layer) into download progress.
/// </summary>
/// <param name="current">The Ollama server connected now (null when none); asked at every pull, since it can change at run time.</param>
public sealed class OllamaPuller(Func<CancellationToken, Task<OllamaProvider?>> current, HttpClient http) : IOllamaPuller
{
    public async Task<bool> IsConfiguredAsync(CancellationToken ct) => await current(ct) is not null;

    public async Task PullAsync(string model, IProgress<DownloadProgress> progress, CancellationToken ct)
    {
        var provider = await current(ct) ?? throw new InferenceUnavailableException("No Ollama server is connected.");
        var url = new Uri(provider.BaseUri, "api/pull");
        HttpResponseMessage response;
        try
        {
            // Headers only: the progress lines are read as Ollama writes them, not once the pull has ended.
            using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = JsonContent.Create(new { model, stream = true }) };
            response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        }
        catch (HttpRequestException ex)
        {
            throw new InferenceUnavailableException($"Ollama at {provider.BaseUri} is not reachable: {ex.Message}", ex);
        }
        using (response)
        {
            if (!response.IsSuccessStatusCode)
                throw new InferenceUnavailableException($"Ollama refused to pull '{model}': HTTP {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
            var started = DateTime.UtcNow;
            while (await reader.ReadLineAsync(ct) is { } line)
            {
                if (string.IsNullOrWhiteSpace(line)) continue;
                using var doc = JsonDocument.Parse(line);
                var root = doc.RootElement;
                if (root.TryGetProperty("error", out var error))
                    throw new InferenceUnavailableException($"Ollama could not pull '{model}': {error.GetString()}");
                var status = root.TryGetProperty("status", out var s) ? s.GetString() : null;
                if (status == "success") return;
                if (root.TryGetProperty("total", out var total) && root.TryGetProperty("completed", out var completed))
                {
                    var seconds = Math.Max(0.001, (DateTime.UtcNow - started).TotalSeconds);
                    progress.Report(new DownloadProgress(completed.GetInt64(), total.GetInt64(), completed.GetInt64() / seconds,
                        status?.StartsWith("verifying", StringComparison.Ordinal) == true ? DownloadStatus.Verifying : DownloadStatus.Downloading));
                }
            }
            throw new InferenceUnavailableException($"Ollama's pull of '{model}' ended without success.");
        }
    }
}

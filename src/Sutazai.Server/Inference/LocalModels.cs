using Sutazai.Inference;
using Sutazai.Inference.LlamaCpp;

namespace Sutazai.Server.Inference;

/// <summary>The local GGUF models' administration shared by the API, the web UI's Models page and <c>sutazai models rm</c>.</summary>
public sealed class LocalModels(LlamaCppProvider llama, ModelCatalog catalog, ILogger<LocalModels> logger, Hosting.LifecycleEvents? events = null)
{
    /// <summary>Unloads and deletes a local GGUF model; returns why it could not, or null.</summary>
    public async Task<string?> DeleteAsync(string id, CancellationToken ct)
    {
        var file = llama.FindFile(id);
        if (file is null) return $"No local model '{id}'. Models served by Ollama or an OpenAI-compatible server are managed there.";
        ct.ThrowIfCancellationRequested();
        await llama.UnloadAsync(id);
        File.Delete(file.Path);
        catalog.Invalidate();
        logger.LogInformation("Deleted model {Model} ({Path})", id, file.Path);
        if (events is not null) await events.PublishAsync(Hosting.LifecycleEvents.ModelDeleted, new { model = id }, CancellationToken.None);
        return null;
    }
}

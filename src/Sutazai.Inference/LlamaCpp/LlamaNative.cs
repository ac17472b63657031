using LLama.Native;
using Microsoft.Extensions.Logging;

namespace Sutazai.Inference.LlamaCpp;

/// <summary>Routes llama.cpp's native log into the host's logging once, before the native library loads.</summary>
internal static class LlamaNative
{
    private static int _configured;

    /// <summary>
    /// Warnings llama.cpp prints for every embedding context and call we make on purpose (mean pooling on a model
    /// whose default is none; all tokens as outputs); logged at Debug so they do not drown real warnings.
    /// </summary>
    private static readonly string[] ExpectedWarnings =
    [
        "but [1] was specified",
        "embeddings required but some input tokens were not marked as outputs",
    ];

    public static void EnsureConfigured(ILogger logger)
    {
        if (Interlocked.Exchange(ref _configured, 1) == 1) return;
        NativeLibraryConfig.All.WithLogCallback((level, message) =>
        {
            var text = message.TrimEnd();
            if (text.Length == 0) return;
            switch (level)
            {
                case LLamaLogLevel.Error:
                    logger.LogError("llama.cpp: {Message}", text);
                    break;
                case LLamaLogLevel.Warning when ExpectedWarnings.Any(w => text.Contains(w, StringComparison.Ordinal)):
                    logger.LogDebug("llama.cpp: {Message}", text);
                    break;
                case LLamaLogLevel.Warning:
                    logger.LogWarning("llama.cpp: {Message}", text);
                    break;
                default:
                    logger.LogTrace("llama.cpp: {Message}", text);
                    break;
            }
        });
    }
}

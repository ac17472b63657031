namespace Sutazai.Inference;

/// <summary>Which provider and model answer when a request names none. Bound from <c>Sutazai:Inference</c>.</summary>
public sealed class InferenceOptions
{
    public const string Section = "Sutazai:Inference";

    /// <summary><c>llamacpp</c>, <c>ollama</c> or <c>openai</c>.</summary>
    public string Provider { get; set; } = "llamacpp";

    /// <summary>Model id used when a request names none; empty picks the first model the default provider lists.</summary>
    public string DefaultModel { get; set; } = "";

    /// <summary>Largest <c>maxTokens</c> a request may ask for.</summary>
    public int MaxOutputTokensLimit { get; set; } = 32768;

    /// <summary>Longest prompt, in characters, a generation request may send; checked before tokenizing.</summary>
    public int MaxPromptChars { get; set; } = 200_000;

    /// <summary>Longest single embedding input, in characters; checked before embedding.</summary>
    public int MaxEmbeddingInputChars { get; set; } = 32_768;

    /// <summary>Most strings one embeddings request may hold.</summary>
    public int MaxEmbeddingInputs { get; set; } = 2048;

    /// <summary>Used when a request gives no <c>maxTokens</c>.</summary>
    public int DefaultMaxOutputTokens { get; set; } = 1024;

    public LlamaCppOptions LlamaCpp { get; set; } = new();

    public OllamaOptions Ollama { get; set; } = new();

    public OpenAIOptions OpenAI { get; set; } = new();

    public PullOptions Pull { get; set; } = new();
}

public sealed class LlamaCppOptions
{
    /// <summary>Folder of GGUF files; empty means <c>&lt;DataDir&gt;/models</c>.</summary>
    public string ModelsDir { get; set; } = "";

    /// <summary>CPU threads for decoding; 0 uses every core.</summary>
    public int Threads { get; set; }

    /// <summary>KV-cache cells shared by every conversation of a loaded model (llama.cpp n_ctx, unified).</summary>
    public int ContextSize { get; set; } = 8192;

    /// <summary>Requests decoded together in one batch (continuous batching slots).</summary>
    public int ParallelSlots { get; set; } = 4;

    /// <summary>Finished conversations whose KV cache is kept for prefix reuse by the next turn.</summary>
    public int PrefixCacheEntries { get; set; } = 4;

    /// <summary>Tokens per llama_decode call when reading prompts.</summary>
    public int BatchSize { get; set; } = 512;

    /// <summary>Idle time after which a loaded model is unloaded; negative keeps it loaded.</summary>
    public TimeSpan KeepAlive { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Use llama.cpp's flash-attention kernels. On by default: on CPU they skip the masked cells of the shared KV cache,
    /// so sequences kept for prefix reuse cost running requests nothing (see docs/performance.md, decode scaling).
    /// </summary>
    public bool FlashAttention { get; set; } = true;

    /// <summary>Memory a model may use; 0 uses the memory the operating system reports available.</summary>
    public long MaxMemoryBytes { get; set; }
}

public sealed class OllamaOptions
{
    /// <summary>Base URL of an Ollama server; empty disables the provider unless auto-detection finds one.</summary>
    public string Url { get; set; } = "";

    /// <summary>Probe http://localhost:11434 at start-up when no Url is set and no local model exists.</summary>
    public bool AutoDetect { get; set; } = true;

    public TimeSpan Timeout { get; set; } = TimeSpan.FromMinutes(5);
}

public sealed class OpenAIOptions
{
    /// <summary>Base URL of an OpenAI-compatible API, e.g. http://localhost:8000/v1; empty disables the provider.</summary>
    public string BaseUrl { get; set; } = "";

    public string ApiKey { get; set; } = "";

    /// <summary>Model used when a caller gives the provider no model id.</summary>
    public string Model { get; set; } = "";
}

public sealed class PullOptions
{
    /// <summary>Hugging Face base URL for <c>hf:</c> references.</summary>
    public string HuggingFaceBaseUrl { get; set; } = "https://huggingface.co";

    /// <summary>Downloads running at once.</summary>
    public int MaxConcurrent { get; set; } = 2;

    /// <summary>Hugging Face access token for gated or private repositories; when empty, the <c>HF_TOKEN</c> environment
    /// variable (Hugging Face's own convention) is used.</summary>
    public string? HuggingFaceToken { get; set; }

    /// <summary>The token to send to the Hugging Face host: the setting, else <c>HF_TOKEN</c>, else none.</summary>
    public string? EffectiveHuggingFaceToken =>
        !string.IsNullOrWhiteSpace(HuggingFaceToken) ? HuggingFaceToken
        : Environment.GetEnvironmentVariable("HF_TOKEN") is { Length: > 0 } env ? env : null;
}

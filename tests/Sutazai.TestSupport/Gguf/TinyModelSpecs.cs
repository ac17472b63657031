using Sutazai.Inference.Gguf;

namespace Sutazai.TestSupport;

/// <summary>
/// Describes a tiny llama-architecture model whose greedy output follows a token successor table
/// exactly (see <see cref="TinyModels.WriteDeterministic"/>).
/// </summary>
/// <remarks>
/// Token strings are llama.cpp token texts: SentencePiece pieces use "▁" (U+2581) for a space,
/// byte tokens are written "&lt;0x0A&gt;" (upper-case hex), and the fixed specials are "&lt;unk&gt;" (id 0),
/// "&lt;s&gt;" (BOS, id 1) and "&lt;/s&gt;" (EOS, id 2). Ids 3..258 are the byte tokens &lt;0x00&gt;..&lt;0xFF&gt;,
/// followed by <see cref="ControlTokens"/>, then <see cref="Pieces"/>, then helper pieces generated so
/// that llama.cpp's SPM tokenizer can merge every piece from single characters (all prefixes of at
/// least two characters, e.g. "▁O", "▁On", "▁Onc" for "▁Once").
/// The model is order-1 Markov: the next token depends only on the current (last) token.
/// </remarks>
public sealed record DeterministicModelSpec
{
    /// <summary>Phi-3 style chat template (Jinja); llama.cpp's built-in detector maps it to "phi3".</summary>
    public const string PhiStyleChatTemplate =
        "{%- for message in messages -%}" +
        "{{- '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' -}}" +
        "{%- endfor -%}" +
        "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}";

    /// <summary>Normal word pieces (e.g. "▁Hello", "!"). Must not contain ASCII spaces.</summary>
    public IReadOnlyList<string> Pieces { get; init; } = [];

    /// <summary>Control tokens (token type CONTROL), matched as single tokens when specials are parsed (e.g. "&lt;|user|&gt;").</summary>
    public IReadOnlyList<string> ControlTokens { get; init; } = [];

    /// <summary>Token text → next token text. Any token of the vocabulary may appear on either side.</summary>
    public IReadOnlyDictionary<string, string> Successors { get; init; } = new Dictionary<string, string>();

    /// <summary>Next token for every token not listed in <see cref="Successors"/> (default: EOS).</summary>
    public string DefaultSuccessor { get; init; } = "</s>";

    /// <summary>Value of <c>tokenizer.chat_template</c>, or null to omit it.</summary>
    public string? ChatTemplate { get; init; }

    /// <summary>Control token recorded as <c>tokenizer.ggml.eot_token_id</c> (an end-of-generation token), or null.</summary>
    public string? EndOfTurnToken { get; init; }

    /// <summary><c>llama.context_length</c>.</summary>
    public int ContextLength { get; init; } = 2048;

    /// <summary>Number of (inert) transformer blocks.</summary>
    public int BlockCount { get; init; } = 1;

    /// <summary>
    /// Logit of the successor token (all others are 0). 40 makes sampling effectively deterministic
    /// even with temperature 1 and default repetition penalties, not only with greedy sampling.
    /// </summary>
    public float LogitMargin { get; init; } = 40f;

    /// <summary><c>general.name</c>.</summary>
    public string ModelName { get; init; } = "SutazAI Tiny Deterministic";

    /// <summary>
    /// The standard test model. Exact greedy outputs (StatelessExecutor text, BOS added, specials parsed):
    /// <list type="bullet">
    /// <item>raw prompt <c>"Once"</c> → <c>" upon a time."</c> then EOS (<see cref="DefaultExpectations.OnceCompletion"/>);</item>
    /// <item>raw prompt <c>"Once upon"</c> → <c>" a time."</c> then EOS;</item>
    /// <item>raw prompt <c>""</c> (BOS only) → <c>" Once upon a time."</c> then EOS;</item>
    /// <item>raw prompt <c>"smile"</c> → <c>"😀"</c> (four byte tokens F0 9F 98 80) then EOS — exercises incremental UTF-8 decoding;</item>
    /// <item>raw prompt <c>"la"</c> → <c>" la"</c> repeated forever (one token each) — use for max-token and cancellation tests;</item>
    /// <item>any chat rendered with the built-in template and the assistant prefix
    /// (<c>…&lt;|assistant|&gt;\n</c>, whose last token is &lt;0x0A&gt;) → <c>"Hello! How can I help you?"</c>
    /// (8 tokens) then &lt;|end|&gt; (end-of-generation); a renderer that drops the trailing newline (prompt ending in
    /// &lt;|assistant|&gt;) gets <c>"\nHello! How can I help you?"</c> (9 tokens);</item>
    /// <item>any other prompt whose last token has no entry → <c>""</c> (EOS immediately).</item>
    /// </list>
    /// Successor table: &lt;s&gt;→▁Once→▁upon→▁a→▁time→.→&lt;/s&gt;; &lt;|system|&gt;,&lt;|user|&gt;,&lt;|assistant|&gt;→&lt;0x0A&gt;;
    /// &lt;0x0A&gt;→Hello→!→▁How→▁can→▁I→▁help→▁you→?→&lt;|end|&gt;→&lt;/s&gt;; ▁la→▁la;
    /// ▁smile→&lt;0xF0&gt;→&lt;0x9F&gt;→&lt;0x98&gt;→&lt;0x80&gt;→&lt;/s&gt;; everything else → &lt;/s&gt;.
    /// </summary>
    public static DeterministicModelSpec Default() => new()
    {
        Pieces =
        [
            "▁Once", "▁upon", "▁a", "▁time", ".",
            "Hello", "!", "▁How", "▁can", "▁I", "▁help", "▁you", "?",
            "▁la", "▁smile",
        ],
        ControlTokens = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
        EndOfTurnToken = "<|end|>",
        ChatTemplate = PhiStyleChatTemplate,
        Successors = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["<s>"] = "▁Once",
            ["▁Once"] = "▁upon",
            ["▁upon"] = "▁a",
            ["▁a"] = "▁time",
            ["▁time"] = ".",
            ["."] = "</s>",

            ["<|system|>"] = "<0x0A>",
            ["<|user|>"] = "<0x0A>",
            ["<|assistant|>"] = "<0x0A>",
            ["<0x0A>"] = "Hello",
            ["Hello"] = "!",
            ["!"] = "▁How",
            ["▁How"] = "▁can",
            ["▁can"] = "▁I",
            ["▁I"] = "▁help",
            ["▁help"] = "▁you",
            ["▁you"] = "?",
            ["?"] = "<|end|>",
            ["<|end|>"] = "</s>",

            ["▁la"] = "▁la",

            ["▁smile"] = "<0xF0>",
            ["<0xF0>"] = "<0x9F>",
            ["<0x9F>"] = "<0x98>",
            ["<0x98>"] = "<0x80>",
            ["<0x80>"] = "</s>",
        },
        DefaultSuccessor = "</s>",
    };

    /// <summary>Exact expected texts for <see cref="Default"/> under greedy decoding.</summary>
    public static class DefaultExpectations
    {
        /// <summary>Raw prompt for the story chain.</summary>
        public const string OncePrompt = "Once";

        /// <summary>Completion of <see cref="OncePrompt"/> (4 tokens, then EOS).</summary>
        public const string OnceCompletion = " upon a time.";

        /// <summary>Completion of "Once upon" (3 tokens, then EOS).</summary>
        public const string OnceUponCompletion = " a time.";

        /// <summary>Completion of the empty prompt (BOS only; 5 tokens, then EOS).</summary>
        public const string EmptyPromptCompletion = " Once upon a time.";

        /// <summary>Raw prompt that loops forever.</summary>
        public const string LoopPrompt = "la";

        /// <summary>Text of one token of the loop; N generated tokens produce this N times.</summary>
        public const string LoopPiece = " la";

        /// <summary>Raw prompt whose completion is a 4-byte emoji emitted as 4 byte tokens.</summary>
        public const string EmojiPrompt = "smile";

        /// <summary>Completion of <see cref="EmojiPrompt"/> (4 tokens, then EOS).</summary>
        public const string EmojiCompletion = "😀";

        /// <summary>Assistant reply to any chat prompt ending with the template's assistant prefix (8 tokens, then &lt;|end|&gt;).</summary>
        public const string ChatReply = "Hello! How can I help you?";

        /// <summary>Number of tokens in <see cref="ChatReply"/>.</summary>
        public const int ChatReplyTokens = 8;
    }
}

/// <summary>
/// Shape of a random-weight llama model for benchmarks (see <see cref="TinyModels.WriteRandom"/>).
/// The defaults give ≈26.1 M parameters ≈ 104 MB as F32.
/// </summary>
public sealed record RandomModelSpec
{
    public int EmbeddingLength { get; init; } = 512;

    public int BlockCount { get; init; } = 6;

    public int FeedForwardLength { get; init; } = 1408;

    public int HeadCount { get; init; } = 8;

    public int HeadCountKv { get; init; } = 4;

    /// <summary>Total vocabulary size including specials, control and byte tokens (≥ 512).</summary>
    public int VocabularySize { get; init; } = 8192;

    public int ContextLength { get; init; } = 2048;

    /// <summary>Element type of the matrices: F32, F16 or BF16 (norm weights are always F32).</summary>
    public GgmlType TensorType { get; init; } = GgmlType.F32;

    /// <summary>Seed of the weight generator; equal specs produce byte-identical files.</summary>
    public ulong Seed { get; init; } = 42;

    /// <summary>Standard deviation of the (uniform) random weights.</summary>
    public float WeightStdDev { get; init; } = 0.02f;

    public string ModelName { get; init; } = "SutazAI Random Llama";

    /// <summary>Value of <c>tokenizer.chat_template</c> (Phi-3 style by default; the control tokens are always present).</summary>
    public string? ChatTemplate { get; init; } = DeterministicModelSpec.PhiStyleChatTemplate;

    /// <summary>Total number of parameters this spec produces.</summary>
    public long ParameterCount
    {
        get
        {
            long e = EmbeddingLength;
            long headDim = e / HeadCount;
            long kv = headDim * HeadCountKv;
            long perLayer = (2 * e) + (e * e * 2) + (e * kv * 2) + (3 * e * FeedForwardLength);
            return (2 * (long)VocabularySize * e) + e + (BlockCount * perLayer);
        }
    }

    /// <summary>Approximate file size in bytes (tensor data; metadata adds ~100 KB).</summary>
    public long ApproximateBytes => ParameterCount * (TensorType == GgmlType.F32 ? 4 : 2);

    /// <summary>
    /// Returns a copy of <paramref name="template"/> (or the defaults) with <see cref="BlockCount"/>
    /// chosen so the file is as close as possible to <paramref name="targetBytes"/>.
    /// </summary>
    public static RandomModelSpec ForTargetSize(long targetBytes, RandomModelSpec? template = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(targetBytes);
        var spec = (template ?? new RandomModelSpec()) with { BlockCount = 1 };
        long one = spec.ApproximateBytes;
        long perLayer = (spec with { BlockCount = 2 }).ApproximateBytes - one;
        long layers = Math.Max(1, (long)Math.Round((double)(targetBytes - one) / perLayer) + 1);
        return spec with { BlockCount = (int)Math.Min(layers, 512) };
    }
}

using Sutazai.Inference.Gguf;

using System.Globalization;
using System.Text;

namespace Sutazai.TestSupport;

/// <summary>Summary of a generated model file.</summary>
public sealed class TinyModelInfo
{
    internal TinyModelInfo(string path, IReadOnlyList<string> tokens, int embeddingLength, int blockCount,
        int headCount, int headCountKv, int feedForwardLength, int? endOfTurnTokenId)
    {
        Path = path;
        Tokens = tokens;
        EmbeddingLength = embeddingLength;
        BlockCount = blockCount;
        HeadCount = headCount;
        HeadCountKv = headCountKv;
        FeedForwardLength = feedForwardLength;
        EndOfTurnTokenId = endOfTurnTokenId;
        FileBytes = new FileInfo(path).Length;
        _ids = new Dictionary<string, int>(tokens.Count, StringComparer.Ordinal);
        for (int i = 0; i < tokens.Count; i++)
        {
            _ids[tokens[i]] = i;
        }
    }

    private readonly Dictionary<string, int> _ids;

    public string Path { get; }

    /// <summary>Vocabulary (token id → token text).</summary>
    public IReadOnlyList<string> Tokens { get; }

    public int EmbeddingLength { get; }

    public int BlockCount { get; }

    public int HeadCount { get; }

    public int HeadCountKv { get; }

    public int FeedForwardLength { get; }

    public long FileBytes { get; }

    public int BosTokenId => TinyModels.BosId;

    public int EosTokenId => TinyModels.EosId;

    /// <summary>Id recorded as <c>tokenizer.ggml.eot_token_id</c>, if any.</summary>
    public int? EndOfTurnTokenId { get; }

    /// <summary>Id of a token by its text (e.g. "▁Once", "&lt;0x0A&gt;", "&lt;|end|&gt;").</summary>
    public int TokenId(string token) => _ids.TryGetValue(token, out int id)
        ? id
        : throw new KeyNotFoundException($"Token '{token}' is not in the vocabulary.");
}

/// <summary>
/// Generates small llama-architecture GGUF models that llama.cpp (LLamaSharp) loads and runs, for
/// tests and benchmarks without downloadable weights.
/// </summary>
public static class TinyModels
{
    internal const int UnkId = 0;
    internal const int BosId = 1;
    internal const int EosId = 2;
    private const int ByteTokenBase = 3;
    private const int HeadDim = 64;
    private const float RmsEps = 1e-5f;

    /// <summary>
    /// Writes a model whose greedy continuation of token <c>t</c> is always <c>spec.Successors[t]</c>
    /// (or <see cref="DeterministicModelSpec.DefaultSuccessor"/>), regardless of earlier context.
    /// </summary>
    /// <remarks>
    /// Construction: one-hot token embeddings (n_embd ≥ vocabulary size, rounded up to 64), all
    /// attention and FFN weights zero so every block adds nothing to the residual stream, RMS-norm
    /// weights 1, and an output matrix whose only non-zero entry in column <c>t</c> is
    /// <c>LogitMargin/√n_embd</c> at row <c>successor(t)</c>. After the final RMS norm the hidden state
    /// is <c>√n_embd·e_t</c>, so the successor's logit is <see cref="DeterministicModelSpec.LogitMargin"/>
    /// and every other logit is exactly 0. See <see cref="DeterministicModelSpec.Default"/> for the
    /// standard vocabulary and its exact expected outputs. Intended for small vocabularies (hundreds of
    /// tokens): n_embd grows with the vocabulary and the (zero) attention matrices with n_embd².
    /// </remarks>
    public static TinyModelInfo WriteDeterministic(string path, DeterministicModelSpec spec)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(spec.BlockCount);
        ArgumentOutOfRangeException.ThrowIfLessThan(spec.ContextLength, 16);

        var vocab = SpmVocabulary.CreateBase();
        foreach (string control in spec.ControlTokens)
        {
            vocab.AddExplicit(control, GgufTokenType.Control, 0f);
        }

        foreach (string piece in spec.Pieces)
        {
            ValidatePiece(piece);
            vocab.AddExplicit(piece, GgufTokenType.Normal, RuneCount(piece));
        }

        foreach (string piece in spec.Pieces)
        {
            vocab.AddMergePath(piece);
        }

        int nVocab = vocab.Count;
        int nEmbd = Math.Max(HeadDim, RoundUp(nVocab, HeadDim));
        int nHead = nEmbd / HeadDim;
        const int nFf = 64;

        int defaultNext = vocab.Resolve(spec.DefaultSuccessor, "DefaultSuccessor");
        var next = new int[nVocab];
        Array.Fill(next, defaultNext);
        foreach (var (from, to) in spec.Successors)
        {
            next[vocab.Resolve(from, "Successors key")] = vocab.Resolve(to, $"Successors['{from}']");
        }

        int? eot = spec.EndOfTurnToken is null ? null : vocab.Resolve(spec.EndOfTurnToken, "EndOfTurnToken");

        var embeddings = new float[nVocab * nEmbd];
        var output = new float[nVocab * nEmbd];
        float weight = spec.LogitMargin / MathF.Sqrt(nEmbd);
        for (int t = 0; t < nVocab; t++)
        {
            embeddings[(t * nEmbd) + t] = 1f;          // token_embd row t = e_t
            output[(next[t] * nEmbd) + t] = weight;     // output row next[t] picks up component t
        }

        var hp = new LlamaShape(nVocab, nEmbd, spec.BlockCount, nFf, nHead, nHead, spec.ContextLength);
        var writer = new GgufWriter();
        AddLlamaMetadata(writer, hp, spec.ModelName, GgmlType.F32, vocab, eot, spec.ChatTemplate);

        TensorFill ones = static (dest, _) => dest.Fill(1f);
        TensorFill zeros = static (_, _) => { };
        writer.AddTensor("token_embd.weight", embeddings, nEmbd, nVocab);
        writer.AddTensor("output_norm.weight", GgmlType.F32, [nEmbd], ones);
        writer.AddTensor("output.weight", output, nEmbd, nVocab);
        for (int layer = 0; layer < spec.BlockCount; layer++)
        {
            AddBlock(writer, layer, hp, GgmlType.F32, ones, _ => zeros);
        }

        writer.WriteTo(path);
        return new TinyModelInfo(path, vocab.Tokens, nEmbd, spec.BlockCount, nHead, nHead, nFf, eot);
    }

    /// <summary>
    /// Writes a real-shaped llama model with seeded uniform random weights (std
    /// <see cref="RandomModelSpec.WeightStdDev"/>), unit norm weights, an SPM vocabulary of byte tokens,
    /// control tokens (&lt;|system|&gt;, &lt;|user|&gt;, &lt;|assistant|&gt;, &lt;|end|&gt;) and generated English-like
    /// pieces, and the spec's chat template. Output text is gibberish; compute cost is realistic.
    /// </summary>
    public static TinyModelInfo WriteRandom(string path, RandomModelSpec spec)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(spec.BlockCount);
        ArgumentOutOfRangeException.ThrowIfLessThan(spec.VocabularySize, 512);
        ArgumentOutOfRangeException.ThrowIfLessThan(spec.ContextLength, 16);
        if (spec.HeadCount <= 0 || spec.EmbeddingLength % spec.HeadCount != 0 || spec.HeadCountKv <= 0 || spec.HeadCount % spec.HeadCountKv != 0)
        {
            throw new ArgumentException("EmbeddingLength must be divisible by HeadCount, and HeadCount by HeadCountKv.", nameof(spec));
        }

        if (spec.TensorType is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16))
        {
            throw new ArgumentException("TensorType must be F32, F16 or BF16.", nameof(spec));
        }

        var vocab = SpmVocabulary.CreateBase();
        foreach (string control in ChatControlTokens)
        {
            vocab.AddExplicit(control, GgufTokenType.Control, 0f);
        }

        vocab.FillWithGeneratedPieces(spec.VocabularySize);
        int eot = vocab.Resolve("<|end|>", "EOT");

        var hp = new LlamaShape(spec.VocabularySize, spec.EmbeddingLength, spec.BlockCount, spec.FeedForwardLength,
            spec.HeadCount, spec.HeadCountKv, spec.ContextLength);
        var writer = new GgufWriter();
        AddLlamaMetadata(writer, hp, spec.ModelName, spec.TensorType, vocab, eot, spec.ChatTemplate);

        float bound = spec.WeightStdDev * MathF.Sqrt(3f);
        TensorFill RandomFill(string tensorName)
        {
            var rng = new SplitMix64(spec.Seed ^ StableHash(tensorName));
            return (dest, _) =>
            {
                for (int i = 0; i < dest.Length; i++)
                {
                    dest[i] = ((rng.NextFloat() * 2f) - 1f) * bound;
                }
            };
        }

        TensorFill ones = static (dest, _) => dest.Fill(1f);
        writer.AddTensor("token_embd.weight", spec.TensorType, [hp.Embd, hp.Vocab], RandomFill("token_embd.weight"));
        writer.AddTensor("output_norm.weight", GgmlType.F32, [hp.Embd], ones);
        writer.AddTensor("output.weight", spec.TensorType, [hp.Embd, hp.Vocab], RandomFill("output.weight"));
        for (int layer = 0; layer < spec.BlockCount; layer++)
        {
            AddBlock(writer, layer, hp, spec.TensorType, ones, RandomFill);
        }

        writer.WriteTo(path);
        return new TinyModelInfo(path, vocab.Tokens, hp.Embd, hp.Layers, hp.Heads, hp.HeadsKv, hp.Ff, eot);
    }

    /// <summary>Control tokens of the Phi-3 style chat format used by both generators' default template.</summary>
    public static IReadOnlyList<string> ChatControlTokens { get; } = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"];

    private readonly record struct LlamaShape(int Vocab, int Embd, int Layers, int Ff, int Heads, int HeadsKv, int Context)
    {
        public int HeadDim => Embd / Heads;

        public int EmbdKv => HeadDim * HeadsKv;
    }

    private static void AddLlamaMetadata(GgufWriter w, LlamaShape hp, string name, GgmlType matrixType,
        SpmVocabulary vocab, int? eot, string? chatTemplate)
    {
        const string arch = "llama";
        w.AddString("general.architecture", arch);
        w.AddString("general.name", name);
        // llama_ftype: 0 = all F32, 1 = mostly F16, 32 = mostly BF16.
        w.AddUInt32("general.file_type", matrixType switch { GgmlType.F16 => 1u, GgmlType.BF16 => 32u, _ => 0u });
        w.AddUInt32($"{arch}.vocab_size", (uint)hp.Vocab);
        w.AddUInt32($"{arch}.context_length", (uint)hp.Context);
        w.AddUInt32($"{arch}.embedding_length", (uint)hp.Embd);
        w.AddUInt32($"{arch}.block_count", (uint)hp.Layers);
        w.AddUInt32($"{arch}.feed_forward_length", (uint)hp.Ff);
        w.AddUInt32($"{arch}.attention.head_count", (uint)hp.Heads);
        w.AddUInt32($"{arch}.attention.head_count_kv", (uint)hp.HeadsKv);
        w.AddUInt32($"{arch}.rope.dimension_count", (uint)hp.HeadDim);
        w.AddFloat32($"{arch}.rope.freq_base", 10000f);
        w.AddFloat32($"{arch}.attention.layer_norm_rms_epsilon", RmsEps);

        w.AddString("tokenizer.ggml.model", "llama");
        w.AddArray("tokenizer.ggml.tokens", vocab.Tokens);
        w.AddArray("tokenizer.ggml.scores", vocab.Scores);
        w.AddArray("tokenizer.ggml.token_type", vocab.Types);
        w.AddUInt32("tokenizer.ggml.unknown_token_id", UnkId);
        w.AddUInt32("tokenizer.ggml.bos_token_id", BosId);
        w.AddUInt32("tokenizer.ggml.eos_token_id", EosId);
        if (eot is int eotId)
        {
            w.AddUInt32("tokenizer.ggml.eot_token_id", (uint)eotId);
        }

        w.AddBool("tokenizer.ggml.add_bos_token", true);
        w.AddBool("tokenizer.ggml.add_eos_token", false);
        w.AddBool("tokenizer.ggml.add_space_prefix", true);
        if (chatTemplate is not null)
        {
            w.AddString("tokenizer.chat_template", chatTemplate);
        }
    }

    private static void AddBlock(GgufWriter w, int layer, LlamaShape hp, GgmlType type, TensorFill ones, Func<string, TensorFill> matrix)
    {
        string p = $"blk.{layer.ToString(CultureInfo.InvariantCulture)}.";
        void Matrix(string name, long inDim, long outDim) =>
            w.AddTensor(p + name, type, [inDim, outDim], matrix(p + name));

        w.AddTensor(p + "attn_norm.weight", GgmlType.F32, [hp.Embd], ones);
        Matrix("attn_q.weight", hp.Embd, hp.Embd);
        Matrix("attn_k.weight", hp.Embd, hp.EmbdKv);
        Matrix("attn_v.weight", hp.Embd, hp.EmbdKv);
        Matrix("attn_output.weight", hp.Embd, hp.Embd);
        w.AddTensor(p + "ffn_norm.weight", GgmlType.F32, [hp.Embd], ones);
        Matrix("ffn_gate.weight", hp.Embd, hp.Ff);
        Matrix("ffn_down.weight", hp.Ff, hp.Embd);
        Matrix("ffn_up.weight", hp.Embd, hp.Ff);
    }

    private static void ValidatePiece(string piece)
    {
        if (string.IsNullOrEmpty(piece))
        {
            throw new ArgumentException("Pieces must be non-empty.");
        }

        if (piece.Contains(' ', StringComparison.Ordinal))
        {
            throw new ArgumentException($"Piece '{piece}' contains an ASCII space; SentencePiece pieces use '▁' (U+2581) for spaces.");
        }
    }

    private static int RuneCount(string s) => s.EnumerateRunes().Count();

    private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;

    private static ulong StableHash(string s)
    {
        ulong h = 14695981039346656037UL; // FNV-1a
        foreach (char c in s)
        {
            h = (h ^ c) * 1099511628211UL;
        }

        return h;
    }

    private sealed class SplitMix64(ulong seed)
    {
        private ulong _state = seed;

        public float NextFloat()
        {
            ulong z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            return (z >> 40) * (1f / (1 << 24)); // [0, 1)
        }
    }

    /// <summary>SentencePiece-style vocabulary with llama.cpp token types and merge scores.</summary>
    private sealed class SpmVocabulary
    {
        private readonly List<string> _tokens = [];
        private readonly List<float> _scores = [];
        private readonly List<int> _types = [];
        private readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);

        public IReadOnlyList<string> Tokens => _tokens;

        public IReadOnlyList<float> Scores => _scores;

        public IReadOnlyList<int> Types => _types;

        public int Count => _tokens.Count;

        /// <summary>&lt;unk&gt;, &lt;s&gt;, &lt;/s&gt; and the 256 byte tokens (upper-case hex, as llama.cpp's byte_to_token expects).</summary>
        public static SpmVocabulary CreateBase()
        {
            var v = new SpmVocabulary();
            v.Add("<unk>", GgufTokenType.Unknown, 0f);
            v.Add("<s>", GgufTokenType.Control, 0f);
            v.Add("</s>", GgufTokenType.Control, 0f);
            for (int b = 0; b < 256; b++)
            {
                v.Add($"<0x{b:X2}>", GgufTokenType.Byte, 0f);
            }

            return v;
        }

        public void AddExplicit(string text, GgufTokenType type, float score)
        {
            if (_ids.ContainsKey(text))
            {
                throw new ArgumentException($"Token '{text}' is defined twice (or collides with a built-in token).");
            }

            Add(text, type, score);
        }

        /// <summary>
        /// llama.cpp's SPM tokenizer only merges adjacent symbols whose concatenation is a token, so every
        /// prefix of two or more characters must exist for a piece to be reachable from characters.
        /// Scores equal the character length, so longer merges win.
        /// </summary>
        public void AddMergePath(string piece)
        {
            var runes = piece.EnumerateRunes().ToArray();
            var sb = new StringBuilder();
            for (int i = 0; i < runes.Length; i++)
            {
                sb.Append(runes[i].ToString());
                if (i >= 1 && !_ids.ContainsKey(sb.ToString()))
                {
                    Add(sb.ToString(), GgufTokenType.Normal, i + 1);
                }
            }
        }

        public int Resolve(string text, string what) => _ids.TryGetValue(text, out int id)
            ? id
            : throw new ArgumentException($"{what}: token '{text}' is not in the vocabulary.");

        /// <summary>Adds single characters, common words (with merge paths) and letter n-grams until <paramref name="size"/> tokens.</summary>
        public void FillWithGeneratedPieces(int size)
        {
            IEnumerable<string> Candidates()
            {
                yield return "▁";
                foreach (char c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?;:'\"-()")
                {
                    yield return c.ToString();
                }

                foreach (char c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                {
                    yield return "▁" + c;
                }

                foreach (string word in CommonWords.Split(' '))
                {
                    string lower = "▁" + word;
                    string upper = "▁" + char.ToUpperInvariant(word[0]) + word[1..];
                    foreach (string w in new[] { lower, upper })
                    {
                        for (int len = 2; len <= w.Length; len++)
                        {
                            yield return w[..len];
                        }
                    }
                }

                const string letters = "etaoinshrdlcumwfgypbvkjxqz";
                foreach (char a in letters)
                {
                    foreach (char b in letters)
                    {
                        yield return $"{a}{b}";
                        yield return $"▁{a}{b}";
                    }
                }

                foreach (char a in letters)
                {
                    foreach (char b in letters)
                    {
                        foreach (char c in letters)
                        {
                            yield return $"{a}{b}{c}";
                            yield return $"▁{a}{b}{c}";
                        }
                    }
                }
            }

            foreach (string candidate in Candidates())
            {
                if (Count >= size)
                {
                    return;
                }

                if (!_ids.ContainsKey(candidate))
                {
                    Add(candidate, GgufTokenType.Normal, RuneCount(candidate));
                }
            }

            throw new ArgumentOutOfRangeException(nameof(size), size, "Vocabulary size too large for the built-in piece generator.");
        }

        private void Add(string text, GgufTokenType type, float score)
        {
            _ids.Add(text, _tokens.Count);
            _tokens.Add(text);
            _scores.Add(score);
            _types.Add((int)type);
        }

        private const string CommonWords =
            "the of and to in is you that it he was for on are as with his they at be this have from or one had by " +
            "word but not what all were we when your can said there use an each which she do how their if will up " +
            "other about out many then them these so some her would make like him into time has look two more write " +
            "go see number no way could people my than first water been call who oil its now find long down day did " +
            "get come made may part hello world assistant help question answer model system user please thanks " +
            "server data code file test again because between through during before after above below under";
    }
}

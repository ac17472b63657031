using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.AI;

namespace Sutazai.Knowledge.Embeddings;

/// <summary>
/// Keeps the embeddings of recently seen texts in memory (a bounded LRU keyed by SHA-256 of model id and text), so
/// re-indexing unchanged chunks does not run the model again. Misses of one call go to the inner generator together,
/// each distinct text once.
/// </summary>
public sealed class EmbeddingCache : DelegatingEmbeddingGenerator<string, Embedding<float>>
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, LinkedListNode<(string Key, Embedding<float> Value)>> _map = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Key, Embedding<float> Value)> _lru = new();
    private readonly string _defaultModelId;

    public EmbeddingCache(IEmbeddingGenerator<string, Embedding<float>> innerGenerator, int capacity = 10_000)
        : base(innerGenerator)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        _defaultModelId = innerGenerator.GetService<EmbeddingGeneratorMetadata>()?.DefaultModelId ?? string.Empty;
    }

    /// <summary>Most entries kept; the least recently used is dropped first.</summary>
    public int Capacity { get; }

    /// <summary>Entries held now.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _map.Count;
            }
        }
    }

    public override async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(
        IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        var texts = values.ToArray();
        var modelId = options?.ModelId ?? _defaultModelId;
        var keys = new string[texts.Length];
        var found = new Embedding<float>?[texts.Length];
        var missing = new List<string>();
        var missingKeys = new HashSet<string>(StringComparer.Ordinal);
        lock (_lock)
        {
            for (var i = 0; i < texts.Length; i++)
            {
                keys[i] = KeyOf(modelId, options?.Dimensions, texts[i]);
                if (_map.TryGetValue(keys[i], out var node))
                {
                    _lru.Remove(node);
                    _lru.AddFirst(node);
                    found[i] = node.Value.Value;
                }
                else if (missingKeys.Add(keys[i]))
                {
                    missing.Add(texts[i]);
                }
            }
        }

        var fresh = new Dictionary<string, Embedding<float>>(StringComparer.Ordinal);
        if (missing.Count > 0)
        {
            var generated = await base.GenerateAsync(missing, options, cancellationToken).ConfigureAwait(false);
            if (generated.Count != missing.Count)
            {
                throw new InvalidOperationException(
                    $"The inner generator returned {generated.Count} embeddings for {missing.Count} inputs.");
            }

            lock (_lock)
            {
                for (var i = 0; i < missing.Count; i++)
                {
                    var key = KeyOf(modelId, options?.Dimensions, missing[i]);
                    fresh[key] = generated[i];
                    Put(key, generated[i]);
                }
            }
        }

        var result = new GeneratedEmbeddings<Embedding<float>>(texts.Length);
        for (var i = 0; i < texts.Length; i++)
        {
            result.Add(found[i] ?? fresh[keys[i]]);
        }

        return result;
    }

    private void Put(string key, Embedding<float> value)
    {
        if (_map.TryGetValue(key, out var existing))
        {
            _lru.Remove(existing);
            _map.Remove(key);
        }

        _map[key] = _lru.AddFirst((key, value));
        while (_map.Count > Capacity)
        {
            var last = _lru.Last!;
            _lru.RemoveLast();
            _map.Remove(last.Value.Key);
        }
    }

    private static string KeyOf(string modelId, int? dimensions, string text)
    {
        var bytes = Encoding.UTF8.GetBytes($"{modelId}\n{dimensions}\n{text}");
        return Convert.ToHexString(SHA256.HashData(bytes));
    }
}

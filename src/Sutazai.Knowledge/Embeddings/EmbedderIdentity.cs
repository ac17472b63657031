using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.AI;

namespace Sutazai.Knowledge.Embeddings;

/// <summary>
/// Which embedding space vectors belong to: provider, model and dimension count (<c>provider/model/dimensions</c>).
/// Vectors of different identities are never compared or stored in one index.
/// </summary>
public sealed record EmbedderIdentity(string Provider, string Model, int Dimensions)
{
    public override string ToString() => $"{Provider}/{Model}/{Dimensions}";

    /// <summary>A short file- and table-name-safe key for this identity.</summary>
    public string Slug => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(ToString())))[..12];

    /// <summary>The identity an embedder declares in its metadata; it must name its model and dimension count.</summary>
    public static EmbedderIdentity Of(IEmbeddingGenerator<string, Embedding<float>> embedder)
    {
        ArgumentNullException.ThrowIfNull(embedder);
        var metadata = embedder.GetService<EmbeddingGeneratorMetadata>()
            ?? throw new InvalidOperationException("The embedder publishes no EmbeddingGeneratorMetadata.");
        if (metadata.DefaultModelDimensions is not { } dimensions || dimensions < 1 || string.IsNullOrEmpty(metadata.DefaultModelId))
        {
            throw new InvalidOperationException("The embedder's metadata must give its model id and dimension count.");
        }

        return new EmbedderIdentity(metadata.ProviderName ?? "unknown", metadata.DefaultModelId, dimensions);
    }
}

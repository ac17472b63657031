using Microsoft.Extensions.AI;
using Sutazai.Knowledge.Embeddings;

namespace Sutazai.Server.Tests.Knowledge;

public sealed class EmbeddingTests : IClassFixture<EmbeddingTests.MiniLm>
{
    private readonly MiniLmEmbeddingGenerator _generator;

    public EmbeddingTests(MiniLm fixture) => _generator = fixture.Generator;

    public sealed class MiniLm : IDisposable
    {
        public MiniLmEmbeddingGenerator Generator { get; } = new(batchSize: 2);

        public void Dispose() => Generator.Dispose();
    }

    private static double Dot(Embedding<float> a, Embedding<float> b)
    {
        double sum = 0;
        for (var i = 0; i < a.Vector.Length; i++)
        {
            sum += (double)a.Vector.Span[i] * b.Vector.Span[i];
        }

        return sum;
    }

    [Fact]
    public async Task MiniLm_Gives384DimensionalUnitVectors_AndReportsItsModel()
    {
        var embeddings = await _generator.GenerateAsync(["hello world", "", "a third text to make a second batch"]);

        Assert.Equal(3, embeddings.Count);
        Assert.All(embeddings, e =>
        {
            Assert.Equal(384, e.Vector.Length);
            Assert.Equal(1.0, Math.Sqrt(Dot(e, e)), 4);
            Assert.Equal("all-MiniLM-L6-v2", e.ModelId);
        });
        var metadata = _generator.GetService<EmbeddingGeneratorMetadata>()!;
        Assert.Equal("all-MiniLM-L6-v2", metadata.DefaultModelId);
        Assert.Equal(384, metadata.DefaultModelDimensions);
    }

    [Fact]
    public async Task MiniLm_PlacesParaphrasesNearer_AndIsDeterministic()
    {
        var e = await _generator.GenerateAsync(["The cat sat on the mat", "A cat is sitting on a rug", "Quarterly revenue grew 5%"]);
        var again = await _generator.GenerateAsync(["The cat sat on the mat"]);

        Assert.True(Dot(e[0], e[1]) > Dot(e[0], e[2]) + 0.2, $"cat/rug {Dot(e[0], e[1])} vs revenue {Dot(e[0], e[2])}");
        Assert.Equal(e[0].Vector.ToArray(), again[0].Vector.ToArray());
    }

    [Fact]
    public async Task MiniLm_RunsConcurrentCallsSafely()
    {
        var single = await _generator.GenerateAsync(["parallel text"]);
        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => _generator.GenerateAsync(["parallel text", "other"])));

        Assert.All(results, r => Assert.Equal(single[0].Vector.ToArray(), r[0].Vector.ToArray()));
    }

    [Fact]
    public async Task Cache_ServesRepeatedTextsWithoutCallingTheModel()
    {
        var inner = new CountingGenerator();
        using var cache = new EmbeddingCache(inner, capacity: 2);

        var first = await cache.GenerateAsync(["alpha", "beta", "alpha"]);
        Assert.Equal(["alpha", "beta"], inner.Calls.Single());
        Assert.Equal(first[0].Vector.ToArray(), first[2].Vector.ToArray());

        var second = await cache.GenerateAsync(["beta", "alpha"]);
        Assert.Single(inner.Calls);
        Assert.Equal(first[1].Vector.ToArray(), second[0].Vector.ToArray());
        Assert.Equal(2, cache.Count);

        await cache.GenerateAsync(["gamma"]);          // evicts the least recently used: beta
        await cache.GenerateAsync(["alpha"]);
        Assert.Equal(2, inner.Calls.Count);
        await cache.GenerateAsync(["beta"]);
        Assert.Equal(3, inner.Calls.Count);
        Assert.Equal(["beta"], inner.Calls[2]);

        await cache.GenerateAsync(["beta"], new EmbeddingGenerationOptions { ModelId = "other-model" });
        Assert.Equal(4, inner.Calls.Count);
    }

    private sealed class CountingGenerator : IEmbeddingGenerator<string, Embedding<float>>
    {
        public List<string[]> Calls { get; } = [];

        public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(
            IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
        {
            var texts = values.ToArray();
            Calls.Add(texts);
            return Task.FromResult(new GeneratedEmbeddings<Embedding<float>>(
                texts.Select(t => new Embedding<float>(new float[] { t.Length, t[0], 1 }))));
        }

        public object? GetService(Type serviceType, object? serviceKey = null) =>
            serviceType == typeof(EmbeddingGeneratorMetadata) ? new EmbeddingGeneratorMetadata("counting", null, "counting-model", 3) : null;

        public void Dispose() => Calls.Clear();
    }
}

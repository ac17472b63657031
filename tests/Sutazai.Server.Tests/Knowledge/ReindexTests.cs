using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Sutazai.Knowledge.Embeddings;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Knowledge;

/// <summary>A deterministic 16-dimensional bag-of-words embedder: each word adds 1 to a dimension chosen by its hash.</summary>
public sealed class HashEmbedder : IEmbeddingGenerator<string, Embedding<float>>
{
    public const int Dimensions = 16;
    private readonly EmbeddingGeneratorMetadata _metadata = new("test", null, "word-hash", Dimensions);

    public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        var result = new GeneratedEmbeddings<Embedding<float>>();
        foreach (var text in values)
        {
            var vector = new float[Dimensions];
            foreach (var word in text.ToLowerInvariant().Split([' ', '\n', '.', ','], StringSplitOptions.RemoveEmptyEntries))
                vector[(int)((uint)StringComparer.Ordinal.GetHashCode(word) % Dimensions)] += 1;
            var norm = MathF.Sqrt(vector.Sum(v => v * v));
            if (norm == 0) vector[0] = 1;
            else for (var i = 0; i < Dimensions; i++) vector[i] /= norm;
            result.Add(new Embedding<float>(vector));
        }
        return Task.FromResult(result);
    }

    public object? GetService(Type serviceType, object? serviceKey = null) => serviceType == typeof(EmbeddingGeneratorMetadata) ? _metadata : null;

    public void Dispose()
    {
    }
}

public sealed class ReindexTests
{
    [Fact]
    public async Task ChangedEmbedder_ReembedsIndexedDocuments_IntoAFreshIndexOfTheNewDimension()
    {
        var dataDir = Directory.CreateTempSubdirectory("sutazai-reindex-").FullName;
        try
        {
            TestUser user;
            Guid docId;
            string miniLm;
            await using (var first = TestApp.Create(DbProvider.Sqlite, dataDir: dataDir))
            {
                using var anon = first.Client();
                (user, var tokens) = await Accounts.RegisterAndLoginAsync(anon);
                using var client = first.Client(tokens.AccessToken);
                var form = new MultipartFormDataContent();
                var part = new ByteArrayContent(Encoding.UTF8.GetBytes("Llamas are sheared every spring on the farm."));
                part.Headers.ContentType = new MediaTypeHeaderValue("text/plain");
                form.Add(part, "file", "llamas.txt");
                docId = (await (await client.PostAsync("/api/v1/documents", form)).ReadJsonAsync()).GetProperty("documents")[0].GetProperty("id").GetGuid();
                Assert.Equal("indexed", (await Documents.WaitIndexedAsync(client, docId)).GetProperty("status").GetString());
                miniLm = EmbedderIdentity.Of(first.Services.GetRequiredService<IEmbeddingGenerator<string, Embedding<float>>>()).ToString();
                Assert.Equal("sentence-transformers/all-MiniLM-L6-v2/384", miniLm);
                Assert.Equal(miniLm, await first.WithDbAsync(db => db.Documents.Where(d => d.Id == docId).Select(d => d.EmbeddingModel).SingleAsync()));
                Assert.Equal(384 * 4, await first.WithDbAsync(db => db.Chunks.Where(c => c.DocumentId == docId).Select(c => c.Embedding!.Length).FirstAsync()));
            }

            await using var second = TestApp.Create(DbProvider.Sqlite, dataDir: dataDir, services: s =>
            {
                s.RemoveAll<IEmbeddingGenerator<string, Embedding<float>>>();
                s.AddSingleton<IEmbeddingGenerator<string, Embedding<float>>>(new HashEmbedder());
            });
            using var anon2 = second.Client();
            var tokens2 = await Accounts.LoginAsync(anon2, user.Username);
            using var client2 = second.Client(tokens2.AccessToken);
            var deadline = DateTime.UtcNow.AddSeconds(60);
            string? model;
            while ((model = await second.WithDbAsync(db => db.Documents.Where(d => d.Id == docId).Select(d => d.EmbeddingModel).SingleAsync())) != "test/word-hash/16" && DateTime.UtcNow < deadline)
                await Task.Delay(100);
            Assert.Equal("test/word-hash/16", model);
            Assert.Equal(HashEmbedder.Dimensions * 4, await second.WithDbAsync(db => db.Chunks.Where(c => c.DocumentId == docId).Select(c => c.Embedding!.Length).FirstAsync()));
            Assert.Equal("indexed", (await (await client2.GetAsync($"/api/v1/documents/{docId}")).ReadJsonAsync()).GetProperty("status").GetString());

            var hits = await (await client2.GetAsync("/api/v1/search?q=llamas+sheared+spring&mode=vector")).ReadJsonAsync();
            Assert.Equal(docId, Assert.Single(hits.EnumerateArray()).GetProperty("documentId").GetGuid());
            // Each embedding space has an index of its own; the new one was created with 16 dimensions.
            var newIndex = Path.Combine(dataDir, "vectors", new EmbedderIdentity("test", "word-hash", 16).Slug, "store.json");
            Assert.Contains("16", await File.ReadAllTextAsync(newIndex));
            Assert.True(File.Exists(Path.Combine(dataDir, "vectors", new EmbedderIdentity("sentence-transformers", "all-MiniLM-L6-v2", 384).Slug, "store.json")));
        }
        finally
        {
            try
            {
                Directory.Delete(dataDir, recursive: true);
            }
            catch (IOException)
            {
                // A SQLite WAL file may still be closing; the OS temp cleaner takes what is left.
            }
        }
    }
}

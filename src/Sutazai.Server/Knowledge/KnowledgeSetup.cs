using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using Sutazai.Agents.Tools;
using Sutazai.Knowledge.Embeddings;
using Sutazai.Knowledge.Web;
using Sutazai.Knowledge.Vectors;
using Sutazai.Server.Configuration;

namespace Sutazai.Server.Knowledge;

public static class KnowledgeSetup
{
    public static WebApplicationBuilder AddSutazaiKnowledge(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<KnowledgeOptions>().BindConfiguration(KnowledgeOptions.Section)
            .Validate(o => o.MaxUploadBytes >= 1024, "Sutazai:Knowledge:MaxUploadBytes must be at least 1024.")
            .Validate(o => o.ChunkTokens is >= 32 and <= 8192, "Sutazai:Knowledge:ChunkTokens must be between 32 and 8192.")
            .Validate(o => o.ChunkOverlapTokens >= 0 && o.ChunkOverlapTokens < o.ChunkTokens, "Sutazai:Knowledge:ChunkOverlapTokens must be at least 0 and below ChunkTokens.")
            .Validate(o => o.VectorStore is "usearch" or "pgvector" or "qdrant", "Sutazai:Knowledge:VectorStore must be 'usearch', 'pgvector' or 'qdrant'.")
            .Validate(o => o.VectorStore != "qdrant" || (Uri.TryCreate(o.Qdrant.Url, UriKind.Absolute, out var url) && url.Scheme is "http" or "https"),
                "Sutazai:Knowledge:Qdrant:Url must be an absolute http(s) URL (Qdrant's gRPC port, 6334 by default) with VectorStore 'qdrant'.")
            .Validate(o => o.VectorStore != "pgvector" || o.PgVectorConnectionString.Length > 0, "Sutazai:Knowledge:PgVectorConnectionString is required with VectorStore 'pgvector'.")
            .Validate(o => o.UrlAllowlist.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .All(a => !a.Contains('/', StringComparison.Ordinal) || System.Net.IPNetwork.TryParse(a, out _)), "Sutazai:Knowledge:UrlAllowlist entries must be host names or CIDR networks.")
            .Validate(o => o.EmbeddingCacheEntries >= 0, "Sutazai:Knowledge:EmbeddingCacheEntries must not be negative.")
            .ValidateOnStart();
        services.AddSingleton<DocumentStorage>();
        services.AddSingleton(sp => new SsrfGuard(sp.GetRequiredService<IOptions<KnowledgeOptions>>().Value.UrlAllowlist
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)));
        services.AddSingleton<IEmbeddingGenerator<string, Embedding<float>>>(sp =>
        {
            var entries = sp.GetRequiredService<IOptions<KnowledgeOptions>>().Value.EmbeddingCacheEntries;
            var model = new MiniLmEmbeddingGenerator();
            return entries > 0 ? new EmbeddingCache(model, entries) : model;
        });
        services.AddSingleton(sp => EmbedderIdentity.Of(sp.GetRequiredService<IEmbeddingGenerator<string, Embedding<float>>>()));
        // One index per embedding space: a changed embedder gets a fresh index and documents are re-embedded into it.
        services.AddSingleton<VectorStores>();
        services.AddSingleton(sp => sp.GetRequiredService<VectorStores>().ForKnowledge(sp.GetRequiredService<EmbedderIdentity>()));
        services.AddSingleton<IngestionWorker>();
        Tasks.TasksSetup.AddTaskHandler<IngestionTaskHandler>(services);
        services.AddHostedService(sp => sp.GetRequiredService<IngestionWorker>());
        services.AddScoped<KnowledgeSearch>();
        services.AddScoped<IKnowledgeSearch>(sp => sp.GetRequiredService<KnowledgeSearch>());
        services.AddScoped<CollectionService>();
        services.AddScoped<DocumentService>();
        return builder;
    }
}

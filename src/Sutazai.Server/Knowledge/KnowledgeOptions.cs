namespace Sutazai.Server.Knowledge;

public sealed class KnowledgeOptions
{
    public const string Section = "Sutazai:Knowledge";

    public long MaxUploadBytes { get; set; }

    public int ChunkTokens { get; set; }

    public int ChunkOverlapTokens { get; set; }

    /// <summary>How often a node compares its embedded index with the database when nothing told it to.</summary>
    public TimeSpan IndexSyncInterval { get; set; }

    /// <summary><c>usearch</c> (embedded, files in the data dir), <c>pgvector</c> or <c>qdrant</c>.</summary>
    public string VectorStore { get; set; } = "";

    public string PgVectorConnectionString { get; set; } = "";

    public int EmbeddingCacheEntries { get; set; }

    public QdrantOptions Qdrant { get; set; } = new();

    /// <summary>Comma-separated hosts or CIDR networks that URL ingestion may reach despite the SSRF guard.</summary>
    public string UrlAllowlist { get; set; } = "";
}

public sealed class QdrantOptions
{
    /// <summary>Qdrant's gRPC endpoint, e.g. <c>http://localhost:6334</c>.</summary>
    public string Url { get; set; } = "";

    public string ApiKey { get; set; } = "";
}

namespace Sutazai.Data.Entities;

/// <summary>A named group of documents, owned by one user and optionally shared.</summary>
public sealed class KnowledgeCollection
{
    public Guid Id { get; set; }

    public Guid OwnerId { get; set; }

    public required string Name { get; set; }

    public string? Description { get; set; }

    /// <summary>Every user may search it (read only).</summary>
    public bool SharedWithAll { get; set; }

    public DateTime CreatedAt { get; set; }
}

/// <summary>A named user a collection is shared with (read only).</summary>
public sealed class CollectionShare
{
    public Guid CollectionId { get; set; }

    public Guid UserId { get; set; }
}

public static class DocumentStatus
{
    public const string Queued = "queued";
    public const string Extracting = "extracting";
    public const string Embedding = "embedding";
    public const string Indexed = "indexed";
    public const string Failed = "failed";
}

/// <summary>An uploaded file or fetched page, stored under the data dir by id, and its ingestion state.</summary>
public sealed class KnowledgeDocument
{
    public Guid Id { get; set; }

    public Guid OwnerId { get; set; }

    public Guid? CollectionId { get; set; }

    /// <summary>Sanitised display name; never used as a path.</summary>
    public required string Name { get; set; }

    public string? Title { get; set; }

    public required string Kind { get; set; }

    public long SizeBytes { get; set; }

    public required string Sha256 { get; set; }

    public string? SourceUrl { get; set; }

    public string Status { get; set; } = DocumentStatus.Queued;

    public int ChunkCount { get; set; }

    public int ChunksEmbedded { get; set; }

    public string? Error { get; set; }

    public string? EmbeddingModel { get; set; }

    public int Attempts { get; set; }

    /// <summary>
    /// The ingestion task (its queue message id) that claimed the document: only a redelivery of that task may take
    /// up a document left extracting or embedding, so a duplicate task never works on it at the same time.
    /// </summary>
    public Guid? IngestionTaskId { get; set; }

    public DateTime CreatedAt { get; set; }

    public DateTime UpdatedAt { get; set; }
}

/// <summary>One chunk of a document with its embedding (kept so vector indexes can be rebuilt).</summary>
public sealed class DocumentChunk
{
    public Guid Id { get; set; }

    public Guid DocumentId { get; set; }

    public Guid OwnerId { get; set; }

    public Guid? CollectionId { get; set; }

    public int Index { get; set; }

    public required string Text { get; set; }

    public string? Heading { get; set; }

    public int? Page { get; set; }

    public int TokenCount { get; set; }

    public byte[]? Embedding { get; set; }
}

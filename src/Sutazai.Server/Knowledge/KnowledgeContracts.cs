using Sutazai.Data.Entities;

namespace Sutazai.Server.Knowledge;

public sealed record DocumentResponse(
    Guid Id, string Name, string? Title, string Kind, long SizeBytes, string Sha256, Guid? CollectionId, string Status,
    int ChunkCount, int ChunksEmbedded, string? Error, string? SourceUrl, DateTime CreatedAt, DateTime UpdatedAt, Guid? DuplicateOf = null)
{
    public static DocumentResponse From(KnowledgeDocument d, Guid? duplicateOf = null) =>
        new(d.Id, d.Name, d.Title, d.Kind, d.SizeBytes, d.Sha256, d.CollectionId, d.Status, d.ChunkCount, d.ChunksEmbedded, d.Error, d.SourceUrl, d.CreatedAt, d.UpdatedAt, duplicateOf);
}

public sealed record UploadResponse(IReadOnlyList<DocumentResponse> Documents);

public sealed record CollectionRequest(string? Name, string? Description, bool? SharedWithAll, List<Guid>? SharedWithUserIds);

public sealed record CollectionResponse(Guid Id, Guid OwnerId, string Name, string? Description, bool SharedWithAll, IReadOnlyList<Guid> SharedWithUserIds, int DocumentCount, DateTime CreatedAt, bool Owned);

/// <param name="SharedBy">The owner's user name when the passage is not the searcher's own (a collection shared with them); null for their own.</param>
public sealed record SearchResult(Guid DocumentId, string Title, Guid ChunkId, string Text, double Score, int? Page, string? Heading, string? SharedBy = null);

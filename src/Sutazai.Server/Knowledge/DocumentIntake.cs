using Microsoft.EntityFrameworkCore;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Knowledge.Extraction;

namespace Sutazai.Server.Knowledge;

/// <summary>
/// The one way content becomes a queued document, for uploads and fetched URLs alike: the same content from the same
/// owner returns the existing document; otherwise the bytes are stored by id and a <c>queued</c> row is inserted.
/// </summary>
public static class DocumentIntake
{
    public static async Task<DocumentResponse> AcceptAsync(
        AppDbContext db, DocumentStorage storage, TimeProvider time, Guid ownerId, Guid? collectionId,
        string name, DocumentKind kind, long size, string sha256, Func<Stream> open, string? sourceUrl, CancellationToken ct)
    {
        var existing = await db.Documents.AsNoTracking()
            .FirstOrDefaultAsync(d => d.OwnerId == ownerId && d.Sha256 == sha256 && d.Status != DocumentStatus.Failed, ct);
        if (existing is not null) return DocumentResponse.From(existing, duplicateOf: existing.Id);

        var now = time.GetUtcNow().UtcDateTime;
        var document = new KnowledgeDocument
        {
            Id = Guid.NewGuid(), OwnerId = ownerId, CollectionId = collectionId, Name = FileNames.Sanitize(name),
            Kind = kind.ToString(), SizeBytes = size, Sha256 = sha256, SourceUrl = sourceUrl, CreatedAt = now, UpdatedAt = now,
        };
        await using (var content = open())
        {
            await storage.SaveAsync(document.Id, content, ct);
        }
        db.Documents.Add(document);
        await db.SaveChangesAsync(ct);
        return DocumentResponse.From(document);
    }
}

using Microsoft.EntityFrameworkCore;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Knowledge.Extraction;

namespace Sutazai.Server.Knowledge;

/// <summary>
/// The one way content becomes a queued document, for uploads and fetched URLs alike: the same content from the same
/// owner returns the existing document; otherwise, within the owner's storage quota (507 past it), the bytes are stored
/// by id and a <c>queued</c> row is inserted.
/// </summary>
public static class DocumentIntake
{
    /// <summary>Bytes of documents the user holds (what <c>Sutazai:Quotas:StorageBytesPerUser</c> caps).</summary>
    public static Task<long> StoredBytesAsync(AppDbContext db, Guid ownerId, CancellationToken ct) =>
        db.Documents.Where(d => d.OwnerId == ownerId).SumAsync(d => d.SizeBytes, ct);

    public static async Task<FileOutcome> AcceptAsync(
        AppDbContext db, DocumentStorage storage, TimeProvider time, long quotaBytes, Guid ownerId, Guid? collectionId,
        string name, DocumentKind kind, long size, string sha256, Func<Stream> open, string? sourceUrl, CancellationToken ct)
    {
        var existing = await db.Documents.AsNoTracking()
            .FirstOrDefaultAsync(d => d.OwnerId == ownerId && d.Sha256 == sha256 && d.Status != DocumentStatus.Failed, ct);
        if (existing is not null) return new FileOutcome.Accepted(DocumentResponse.From(existing, duplicateOf: existing.Id));
        if (quotaBytes > 0 && await StoredBytesAsync(db, ownerId, ct) is var used && used + size > quotaBytes)
            return new FileOutcome.Rejected(FileRefusal.OverQuota,
                $"'{FileNames.Sanitize(name)}' ({size} bytes) would exceed your storage quota: {used} of {quotaBytes} bytes are used. Delete documents to make room.");

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
        return new FileOutcome.Accepted(DocumentResponse.From(document));
    }

    public abstract record FileOutcome
    {
        public sealed record Accepted(DocumentResponse Document) : FileOutcome;

        public sealed record Rejected(FileRefusal Reason, string Detail) : FileOutcome;
    }

    /// <summary>Why a file was not taken (the API maps it: 413, 415, 507).</summary>
    public enum FileRefusal
    {
        TooLarge,
        UnsupportedType,
        OverQuota,
    }

    /// <summary>
    /// One uploaded file (from the REST upload or the web UI): the size limit (413), the type sniffed from name and
    /// content (415), the content hash, then <see cref="AcceptAsync"/>. <paramref name="open"/> is called once per pass.
    /// </summary>
    public static async Task<FileOutcome> AcceptFileAsync(
        AppDbContext db, DocumentStorage storage, TimeProvider time, long limit, long quotaBytes, Guid ownerId, Guid? collectionId,
        string fileName, long length, Func<Stream> open, CancellationToken ct)
    {
        if (length > limit)
            return new FileOutcome.Rejected(FileRefusal.TooLarge, $"'{FileNames.Sanitize(fileName)}' is {length} bytes; the limit is {limit} bytes.");
        var head = new byte[Math.Min(DocumentTypeDetector.HeadLength, (int)Math.Min(length, int.MaxValue))];
        await using (var peek = open())
        {
            await peek.ReadExactlyAsync(head, ct);
        }
        var detection = DocumentTypeDetector.Detect(fileName, head);
        if (!detection.IsAccepted)
            return new FileOutcome.Rejected(FileRefusal.UnsupportedType, $"'{FileNames.Sanitize(fileName)}': {detection.RejectionReason}");

        string sha;
        await using (var hashing = open())
        {
            sha = Convert.ToHexStringLower(await System.Security.Cryptography.SHA256.HashDataAsync(hashing, ct));
        }
        return await AcceptAsync(db, storage, time, quotaBytes, ownerId, collectionId, fileName, detection.Kind!.Value, length, sha, open, sourceUrl: null, ct);
    }
}

using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Data.Entities;

namespace Sutazai.Server.Knowledge;

/// <summary>
/// A user's own documents, for every transport: the REST endpoints and the Documents page both list, add and delete
/// through here (owner-scoped), so the page never repeats what the API does step by step.
/// </summary>
public sealed class DocumentService(AppDbContext db, DocumentStorage storage, IngestionWorker worker, IOptions<KnowledgeOptions> options,
    IOptions<Configuration.QuotaOptions> quotas, Hosting.LifecycleEvents events, TimeProvider time)
{
    /// <summary>Largest file accepted (<c>Sutazai:Knowledge:MaxUploadBytes</c>).</summary>
    public long MaxUploadBytes => options.Value.MaxUploadBytes;

    /// <summary>The owner's documents, newest first, optionally of one collection.</summary>
    public async Task<(List<KnowledgeDocument> Items, int Total)> ListAsync(Guid ownerId, Guid? collectionId, int page, int pageSize, CancellationToken ct)
    {
        var query = db.Documents.AsNoTracking().Where(d => d.OwnerId == ownerId && (collectionId == null || d.CollectionId == collectionId));
        var total = await query.CountAsync(ct);
        var items = await query.OrderByDescending(d => d.CreatedAt).Skip((Math.Max(1, page) - 1) * pageSize).Take(pageSize).ToListAsync(ct);
        return (items, total);
    }

    /// <summary>Stores one file (size limit, type check, dedup, quota) and queues it for indexing.</summary>
    public async Task<DocumentIntake.FileOutcome> AddFileAsync(Guid ownerId, Guid? collectionId, string fileName, long length, Func<Stream> open, CancellationToken ct)
    {
        var outcome = await DocumentIntake.AcceptFileAsync(db, storage, time, MaxUploadBytes, quotas.Value.StorageBytesPerUser, ownerId, collectionId, fileName, length, open, ct);
        if (outcome is DocumentIntake.FileOutcome.Accepted { Document.DuplicateOf: null } accepted) await worker.QueueAsync(accepted.Document.Id, ct);
        return outcome;
    }

    /// <summary>Deletes the owner's document with its chunks, vectors and file; false when there is none (or it is someone else's).</summary>
    public async Task<bool> DeleteAsync(Guid ownerId, Guid id, CancellationToken ct)
    {
        if (!await db.Documents.AnyAsync(d => d.Id == id && d.OwnerId == ownerId, ct)) return false;
        await worker.RemoveChunksAsync(db, id, ct);
        await db.Documents.Where(d => d.Id == id).ExecuteDeleteAsync(ct);
        await storage.DeleteAsync(id, ct);
        await events.PublishAsync(Hosting.LifecycleEvents.DocumentDeleted, new { documentId = id, ownerId }, CancellationToken.None);
        return true;
    }
}

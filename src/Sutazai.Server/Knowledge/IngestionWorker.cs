using System.Runtime.InteropServices;
using System.Threading.Channels;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Knowledge.Chunking;
using Sutazai.Knowledge.Embeddings;
using Sutazai.Knowledge.Extraction;
using Sutazai.Knowledge.Vectors;

namespace Sutazai.Server.Knowledge;

/// <summary>
/// Turns queued documents into indexed chunks: extract → chunk → embed in batches → index (vectors + full text). The
/// queue is the documents table itself, so it survives restarts: a document left half-done by a crash is queued again
/// at start-up (and fails visibly after three interrupted attempts) — never stuck "processing".
/// </summary>
public sealed class IngestionWorker(
    IServiceScopeFactory scopes,
    DocumentStorage storage,
    IEmbeddingGenerator<string, Embedding<float>> embedder,
    IVectorStore vectors,
    EmbedderIdentity identity,
    Graph.GraphStore graph,
    IOptions<KnowledgeOptions> options,
    Hosting.Warmup warmup,
    TimeProvider time,
    ILogger<IngestionWorker> logger) : BackgroundService
{
    public const int MaxAttempts = 3;
    private const int EmbedBatch = 32;
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    /// <summary>Tells the worker new documents are queued.</summary>
    public void Notify() => _wake.Writer.TryWrite(true);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!await warmup.WaitAsync(stoppingToken)) return;
        await vectors.EnsureCollectionAsync(identity.Dimensions, stoppingToken);
        await RebuildIfNeededAsync(stoppingToken);
        await RequeueInterruptedAsync(stoppingToken);
        while (!stoppingToken.IsCancellationRequested)
        {
            Guid? next;
            await using (var scope = scopes.CreateAsyncScope())
            {
                var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
                next = await db.Documents.Where(d => d.Status == DocumentStatus.Queued).OrderBy(d => d.CreatedAt).Select(d => (Guid?)d.Id).FirstOrDefaultAsync(stoppingToken);
            }
            if (next is { } id)
            {
                await ProcessAsync(id, stoppingToken);
                continue;
            }
            if (await ReembedNextAsync(stoppingToken)) continue;
            using var idle = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            idle.CancelAfter(TimeSpan.FromSeconds(5));
            try
            {
                await _wake.Reader.WaitToReadAsync(idle.Token);
                _wake.Reader.TryRead(out _);
            }
            catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
            {
                // Periodic look at the queue, for documents queued by another node.
            }
        }
    }

    /// <summary>The embedded index is a cache of the relational store: a lost or corrupt file is rebuilt from the chunks.</summary>
    private async Task RebuildIfNeededAsync(CancellationToken ct)
    {
        if (vectors is not USearchVectorStore usearch) return;
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var current = identity.ToString();
        var chunks = db.Chunks.Where(c => c.Embedding != null && db.Documents.Any(d => d.Id == c.DocumentId && d.EmbeddingModel == current));
        var stored = await chunks.CountAsync(ct);
        if (!usearch.NeedsRebuild && usearch.Count == stored) return;
        logger.LogWarning("Rebuilding the vector index from the database ({Reason})",
            usearch.NeedsRebuild ? usearch.RebuildReason : $"the index holds {usearch.Count} vectors, the database {stored}");
        var rows = await chunks.AsNoTracking()
            .Select(c => new { c.Id, c.OwnerId, c.CollectionId, c.DocumentId, c.Embedding }).ToListAsync(ct);
        await usearch.RebuildAsync(rows.Select(r => new VectorRecord(r.Id, r.OwnerId, r.CollectionId, r.DocumentId,
            MemoryMarshal.Cast<byte, float>(r.Embedding!).ToArray())), ct);
        logger.LogInformation("Rebuilt the vector index with {Count} vectors", rows.Count);
    }

    private async Task RequeueInterruptedAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var now = time.GetUtcNow().UtcDateTime;
        var failed = await db.Documents.Where(d => (d.Status == DocumentStatus.Extracting || d.Status == DocumentStatus.Embedding) && d.Attempts >= MaxAttempts)
            .ExecuteUpdateAsync(s => s.SetProperty(d => d.Status, DocumentStatus.Failed)
                .SetProperty(d => d.Error, $"Ingestion was interrupted {MaxAttempts} times (the server stopped while processing it).")
                .SetProperty(d => d.UpdatedAt, now), ct);
        var requeued = await db.Documents.Where(d => d.Status == DocumentStatus.Extracting || d.Status == DocumentStatus.Embedding)
            .ExecuteUpdateAsync(s => s.SetProperty(d => d.Status, DocumentStatus.Queued).SetProperty(d => d.UpdatedAt, now), ct);
        if (failed + requeued > 0) logger.LogWarning("Ingestion interrupted by a restart: {Requeued} document(s) queued again, {Failed} failed", requeued, failed);
    }

    private async Task ProcessAsync(Guid id, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var document = await db.Documents.FirstOrDefaultAsync(d => d.Id == id, ct);
        if (document is null || document.Status != DocumentStatus.Queued) return;
        try
        {
            document.Status = DocumentStatus.Extracting;
            document.Attempts++;
            document.Error = null;
            document.UpdatedAt = time.GetUtcNow().UtcDateTime;
            await db.SaveChangesAsync(ct);

            ExtractedDocument extracted;
            await using (var file = await storage.OpenSeekableAsync(id, ct))
            {
                extracted = await new DocumentExtractor().ExtractAsync(file, Enum.Parse<DocumentKind>(document.Kind), document.Name, ct);
            }
            var chunker = new TextChunker(new ChunkingOptions { TargetTokens = options.Value.ChunkTokens, OverlapTokens = options.Value.ChunkOverlapTokens });
            var drafts = chunker.Chunk(extracted);

            await RemoveChunksAsync(db, id, ct);
            var chunks = drafts.Select(d => new DocumentChunk
            {
                Id = Guid.NewGuid(), DocumentId = id, OwnerId = document.OwnerId, CollectionId = document.CollectionId,
                Index = d.Index, Text = d.Text, Heading = d.Heading, Page = d.Page, TokenCount = d.TokenCount,
            }).ToList();
            db.Chunks.AddRange(chunks);
            document.Title = string.IsNullOrWhiteSpace(extracted.Title) ? document.Title : extracted.Title.Length > 500 ? extracted.Title[..500] : extracted.Title;
            document.ChunkCount = chunks.Count;
            document.ChunksEmbedded = 0;
            document.Status = DocumentStatus.Embedding;
            document.EmbeddingModel = null;
            await db.SaveChangesAsync(ct);
            await ChunkIndex.AddAsync(db, chunks.Select(c => (c.Id, c.OwnerId, (c.Heading is null ? "" : c.Heading + "\n") + c.Text)), ct);
            await graph.IndexDocumentAsync(db, document.OwnerId, id, chunks.Select(c => (c.Id, c.Text)).ToList(), ct);

            for (var start = 0; start < chunks.Count; start += EmbedBatch)
            {
                var batch = chunks.Skip(start).Take(EmbedBatch).ToList();
                var texts = batch.Select(c => drafts[c.Index].EmbeddingText).ToList();
                var embeddings = await embedder.GenerateAsync(texts, cancellationToken: ct);
                var records = new List<VectorRecord>(batch.Count);
                for (var i = 0; i < batch.Count; i++)
                {
                    var vector = embeddings[i].Vector;
                    batch[i].Embedding = MemoryMarshal.AsBytes(vector.Span).ToArray();
                    records.Add(new VectorRecord(batch[i].Id, document.OwnerId, document.CollectionId, id, vector));
                }
                await vectors.UpsertAsync(records, ct);
                document.ChunksEmbedded = start + batch.Count;
                document.UpdatedAt = time.GetUtcNow().UtcDateTime;
                await db.SaveChangesAsync(ct);
            }

            document.Status = DocumentStatus.Indexed;
            document.EmbeddingModel = identity.ToString();
            document.UpdatedAt = time.GetUtcNow().UtcDateTime;
            await db.SaveChangesAsync(ct);
            logger.LogInformation("Indexed document {Document} ({Chunks} chunks)", id, chunks.Count);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Shutting down: the document stays in its in-progress state and is queued again at the next start.
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            logger.LogWarning(ex, "Ingestion of document {Document} failed", id);
            var message = ex is DocumentExtractionException or InvalidDataException ? ex.Message : $"{ex.GetType().Name}: {ex.Message}";
            await db.Documents.Where(d => d.Id == id).ExecuteUpdateAsync(s => s
                .SetProperty(d => d.Status, DocumentStatus.Failed)
                .SetProperty(d => d.Error, message.Length > 2000 ? message[..2000] : message)
                .SetProperty(d => d.UpdatedAt, time.GetUtcNow().UtcDateTime), CancellationToken.None);
        }
    }

    /// <summary>
    /// Re-embeds the oldest indexed document whose chunks were embedded by another embedder (provider, model or
    /// dimensions changed) into the current index; false when none is left. Until then its chunks are found by keyword
    /// search only, since the current index never holds vectors of another embedding space.
    /// </summary>
    private async Task<bool> ReembedNextAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var current = identity.ToString();
        var document = await db.Documents.Where(d => d.Status == DocumentStatus.Indexed && (d.EmbeddingModel == null || d.EmbeddingModel != current))
            .OrderBy(d => d.CreatedAt).FirstOrDefaultAsync(ct);
        if (document is null) return false;
        var previous = document.EmbeddingModel;
        try
        {
            var chunks = await db.Chunks.Where(c => c.DocumentId == document.Id).OrderBy(c => c.Index).ToListAsync(ct);
            for (var start = 0; start < chunks.Count; start += EmbedBatch)
            {
                var batch = chunks.Skip(start).Take(EmbedBatch).ToList();
                var embeddings = await embedder.GenerateAsync(batch.Select(c => c.Heading is null ? c.Text : c.Heading + "\n\n" + c.Text).ToList(), cancellationToken: ct);
                var records = new List<VectorRecord>(batch.Count);
                for (var i = 0; i < batch.Count; i++)
                {
                    var vector = embeddings[i].Vector;
                    if (vector.Length != identity.Dimensions) throw new VectorDimensionMismatchException(identity.Dimensions, vector.Length, "An embedding");
                    batch[i].Embedding = MemoryMarshal.AsBytes(vector.Span).ToArray();
                    records.Add(new VectorRecord(batch[i].Id, document.OwnerId, document.CollectionId, document.Id, vector));
                }
                await vectors.UpsertAsync(records, ct);
            }
            document.EmbeddingModel = current;
            document.UpdatedAt = time.GetUtcNow().UtcDateTime;
            await db.SaveChangesAsync(ct);
            logger.LogInformation("Re-embedded document {Document} ({Chunks} chunks) from {Previous} to {Current}", document.Id, chunks.Count, previous ?? "an unknown embedder", current);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException && !(ex is OperationCanceledException && ct.IsCancellationRequested))
        {
            logger.LogWarning(ex, "Re-embedding document {Document} failed", document.Id);
            await db.Documents.Where(d => d.Id == document.Id).ExecuteUpdateAsync(s => s
                .SetProperty(d => d.Status, DocumentStatus.Failed)
                .SetProperty(d => d.Error, ($"Re-embedding with {current} failed: {ex.Message}")[..Math.Min(2000, $"Re-embedding with {current} failed: {ex.Message}".Length)])
                .SetProperty(d => d.UpdatedAt, time.GetUtcNow().UtcDateTime), CancellationToken.None);
        }
        return true;
    }

    /// <summary>Removes a document's chunks from every index (vectors, full text, knowledge graph, rows).</summary>
    public async Task RemoveChunksAsync(AppDbContext db, Guid documentId, CancellationToken ct)
    {
        await Graph.GraphStore.RemoveDocumentAsync(db, documentId, ct);
        var ids = await db.Chunks.Where(c => c.DocumentId == documentId).Select(c => c.Id).ToListAsync(ct);
        await vectors.DeleteByDocumentAsync(documentId, ct);
        await ChunkIndex.RemoveDocumentAsync(db, ids, ct);
        await db.Chunks.Where(c => c.DocumentId == documentId).ExecuteDeleteAsync(ct);
    }
}

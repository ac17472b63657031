using System.Runtime.InteropServices;
using System.Text.Json;
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
/// Turns uploaded documents into indexed chunks: extract → chunk → embed in batches → index (vectors + full text).
/// Each upload is a <see cref="TaskKind"/> task on the durable task queue (database or RabbitMQ), so exactly one worker
/// node takes it (lease), a failure is retried with backoff and dead-lettered after <c>Sutazai:Tasks:MaxAttempts</c>,
/// and a task whose worker died is delivered again to any worker, which resumes the document. The document row is
/// the concurrency token: a task claims it with a conditional update (queued → extracting, or its own earlier claim),
/// so a duplicate task never works on a document another one holds. This background service keeps only per-node work:
/// the embedded index's rebuild and sync with the database, and re-embedding after an embedder change.
/// </summary>
public sealed class IngestionWorker(
    IServiceScopeFactory scopes,
    DocumentStorage storage,
    IEmbeddingGenerator<string, Embedding<float>> embedder,
    IVectorStore vectors,
    EmbedderIdentity identity,
    Graph.GraphStore graph,
    IOptions<KnowledgeOptions> options,
    IOptions<Tasks.TaskOptions> taskOptions,
    Tasks.ITaskQueue queue,
    Hosting.LifecycleEvents events,
    Hosting.Warmup warmup,
    TimeProvider time,
    ILogger<IngestionWorker> logger) : BackgroundService
{
    /// <summary>The task kind of one document's ingestion; its payload is <c>{"documentId": "…"}</c>.</summary>
    public const string TaskKind = "knowledge.ingest";

    private const int EmbedBatch = 32;
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly TaskCompletionSource _indexReady = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Puts a stored document's ingestion on the task queue.</summary>
    public async Task QueueAsync(Guid documentId, CancellationToken ct)
    {
        await queue.EnqueueAsync(TaskKind, JsonSerializer.Serialize(new IngestionTask(documentId)), ct);
        _wake.Writer.TryWrite(true);
    }

    /// <summary>Asks this node to bring its embedded index up to date with the database now (after a change it made or heard of).</summary>
    public void Notify() => _wake.Writer.TryWrite(true);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!await warmup.WaitAsync(stoppingToken)) return;
        await vectors.EnsureCollectionAsync(identity.Dimensions, stoppingToken);
        await RebuildIfNeededAsync(stoppingToken);
        _indexReady.TrySetResult();
        await QueueOrphansAsync(stoppingToken);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await SyncIndexAsync(stoppingToken);
                if (await ReembedNextAsync(stoppingToken)) continue;
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning(ex, "Bringing the vector index up to date with the database failed: {Message}", ex.Message);
            }
            using var idle = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            idle.CancelAfter(options.Value.IndexSyncInterval);
            try
            {
                await _wake.Reader.WaitToReadAsync(idle.Token);
                _wake.Reader.TryRead(out _);
            }
            catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
            {
                // Periodic look at the database, for documents another node indexed or deleted.
            }
        }
    }

    /// <summary>
    /// The embedded index (one per node) follows the database, the source of truth: vectors of chunks embedded
    /// anywhere (by any worker) are added, vectors of chunks deleted anywhere are removed. Ids are compared, and only
    /// the missing embeddings are read. A shared store (pgvector) needs none of this.
    /// </summary>
    private async Task SyncIndexAsync(CancellationToken ct)
    {
        if (vectors is not USearchVectorStore usearch) return;
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var current = identity.ToString();
        // Read the index first: a vector a node adds after this snapshot is not taken for missing, nor removed.
        var indexed = (await usearch.IdsAsync(ct)).ToHashSet();
        // Done documents of this embedder must be in the index; documents being embedded now (no model yet) may be.
        var rows = await (from c in db.Chunks
                          join d in db.Documents on c.DocumentId equals d.Id
                          where c.Embedding != null && (d.EmbeddingModel == current || d.EmbeddingModel == null)
                          select new { c.Id, Done = d.EmbeddingModel != null }).ToListAsync(ct);
        var stored = rows.Where(r => r.Done).Select(r => r.Id).ToHashSet();
        var inProgress = rows.Where(r => !r.Done).Select(r => r.Id).ToHashSet();
        var extra = indexed.Where(id => !stored.Contains(id) && !inProgress.Contains(id)).ToList();
        var missing = stored.Where(id => !indexed.Contains(id)).ToList();
        if (extra.Count > 0) await vectors.DeleteAsync(extra, ct);
        foreach (var batch in missing.Chunk(256))
        {
            await vectors.UpsertAsync(await StoredVectorsAsync(db.Chunks.Where(c => batch.Contains(c.Id)), ct), ct);
        }
        if (extra.Count + missing.Count > 0)
            logger.LogInformation("Vector index synced with the database: {Added} added, {Removed} removed", missing.Count, extra.Count);
    }

    /// <summary>
    /// Documents stored as queued whose task never reached the queue (the enqueue failed, or they were uploaded by a
    /// version that polled the table) get one now; a duplicate is harmless, since the claim admits one task.
    /// </summary>
    private async Task QueueOrphansAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var before = time.GetUtcNow().UtcDateTime - TimeSpan.FromMinutes(1);
        var orphans = await db.Documents.Where(d => d.Status == DocumentStatus.Queued && d.IngestionTaskId == null && d.UpdatedAt < before)
            .Select(d => d.Id).ToListAsync(ct);
        foreach (var id in orphans) await QueueAsync(id, ct);
        if (orphans.Count > 0) logger.LogWarning("Queued ingestion for {Count} document(s) that were waiting without a task", orphans.Count);
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
        var records = await StoredVectorsAsync(chunks, ct);
        await usearch.RebuildAsync(records, ct);
        logger.LogInformation("Rebuilt the vector index with {Count} vectors", records.Count);
    }

    /// <summary>The embeddings the database holds for <paramref name="chunks"/>, as index records.</summary>
    private static async Task<List<VectorRecord>> StoredVectorsAsync(IQueryable<DocumentChunk> chunks, CancellationToken ct)
    {
        var rows = await chunks.AsNoTracking().Where(c => c.Embedding != null)
            .Select(c => new { c.Id, c.OwnerId, c.CollectionId, c.DocumentId, c.Embedding }).ToListAsync(ct);
        return [.. rows.Select(r => new VectorRecord(r.Id, r.OwnerId, r.CollectionId, r.DocumentId, MemoryMarshal.Cast<byte, float>(r.Embedding!).ToArray()))];
    }

    /// <summary>
    /// One delivery of a document's ingestion task. Claims the document (a queued one, or one this same task claimed
    /// before its worker died), then does the whole pipeline. A bad file fails the document at once; any other error
    /// is thrown for the queue to retry, and on the last attempt the document fails with that error instead.
    /// </summary>
    public async Task ProcessAsync(Guid id, Tasks.TaskMessage message, CancellationToken ct)
    {
        await _indexReady.Task.WaitAsync(ct); // the embedded index is open (and rebuilt if it had to be)
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var claimed = await db.Documents
            .Where(d => d.Id == id && (d.Status == DocumentStatus.Queued
                || (d.IngestionTaskId == message.Id && (d.Status == DocumentStatus.Extracting || d.Status == DocumentStatus.Embedding))))
            .ExecuteUpdateAsync(u => u
                .SetProperty(d => d.Status, DocumentStatus.Extracting)
                .SetProperty(d => d.IngestionTaskId, message.Id)
                .SetProperty(d => d.Attempts, d => d.Attempts + 1)
                .SetProperty(d => d.Error, (string?)null)
                .SetProperty(d => d.UpdatedAt, time.GetUtcNow().UtcDateTime), ct);
        if (claimed == 0) return; // deleted, done, or held by another task: nothing to do for this one
        var document = await db.Documents.FirstAsync(d => d.Id == id, ct);
        try
        {

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
            await events.PublishAsync(Hosting.LifecycleEvents.DocumentIndexed, new { documentId = id, ownerId = document.OwnerId, chunks = chunks.Count }, CancellationToken.None);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Shutting down: the task goes back to the queue and its next delivery resumes the document.
            throw;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            var permanent = ex is DocumentExtractionException or InvalidDataException or FileNotFoundException;
            if (!permanent && message.Attempt < taskOptions.Value.MaxAttempts)
            {
                logger.LogWarning(ex, "Ingestion of document {Document} failed (attempt {Attempt}); the queue retries it", id, message.Attempt);
                throw;
            }
            logger.LogWarning(ex, "Ingestion of document {Document} failed", id);
            var text = permanent ? ex.Message : $"{ex.GetType().Name}: {ex.Message}";
            await db.Documents.Where(d => d.Id == id && d.IngestionTaskId == message.Id).ExecuteUpdateAsync(s => s
                .SetProperty(d => d.Status, DocumentStatus.Failed)
                .SetProperty(d => d.Error, text.Length > 2000 ? text[..2000] : text)
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

/// <summary>The payload of a <see cref="IngestionWorker.TaskKind"/> task.</summary>
public sealed record IngestionTask(Guid DocumentId);

/// <summary>Delivers <see cref="IngestionWorker.TaskKind"/> tasks to the worker's pipeline.</summary>
public sealed class IngestionTaskHandler(IngestionWorker worker) : Tasks.ITaskHandler
{
    public string Kind => IngestionWorker.TaskKind;

    public Task HandleAsync(Tasks.TaskMessage message, CancellationToken ct)
    {
        var task = JsonSerializer.Deserialize<IngestionTask>(message.Payload, new JsonSerializerOptions(JsonSerializerDefaults.Web))
            ?? throw new InvalidDataException("An ingestion task without a payload.");
        return worker.ProcessAsync(task.DocumentId, message, ct);
    }
}

using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Inference;
using Sutazai.Knowledge.Graph;

namespace Sutazai.Server.Graph;

/// <summary>
/// The write side of the knowledge graph: extracts entities and relations from a document's chunks during ingestion
/// and stores them as the owner's nodes (one per normalised name and type), per-chunk mentions and per-chunk edges;
/// removing a document removes its mentions and edges, and then every node no document mentions any more.
/// </summary>
public sealed class GraphStore(IOptionsMonitor<GraphOptions> options, ModelCatalog catalog, TimeProvider time, ILogger<GraphStore> logger)
{
    /// <summary>Extracts and stores the graph of one document's chunks; never throws for a model that answers badly.</summary>
    public async Task IndexDocumentAsync(AppDbContext db, Guid ownerId, Guid documentId, IReadOnlyList<(Guid ChunkId, string Text)> chunks, CancellationToken ct)
    {
        var settings = options.CurrentValue;
        if (!settings.Enabled) return;
        var model = settings.UseModel ? await ModelExtractorAsync(settings, ct) : null;
        var perChunk = new List<(Guid ChunkId, GraphExtraction Extraction)>();
        foreach (var (chunkId, text) in chunks)
        {
            var extraction = RuleBasedEntityExtractor.Extract(text);
            if (model is not null)
            {
                try
                {
                    extraction.Merge(await model.ExtractAsync(text, ct));
                }
                catch (Exception ex) when (ex is not OutOfMemoryException && !(ex is OperationCanceledException && ct.IsCancellationRequested))
                {
                    logger.LogWarning("Model graph extraction of a chunk of document {Document} failed, the rule-based extraction is kept: {Reason}", documentId, ex.Message);
                }
            }
            perChunk.Add((chunkId, extraction));
        }

        var keys = perChunk.SelectMany(c => c.Extraction.Entities).GroupBy(e => e.Key).ToDictionary(g => g.Key, g => g.First().Name);
        if (keys.Count == 0) return;
        var ids = await EnsureEntitiesAsync(db, ownerId, keys, ct);
        foreach (var (chunkId, extraction) in perChunk)
        {
            db.GraphMentions.AddRange(extraction.Entities.Select(e => new GraphMention { Id = Guid.NewGuid(), EntityId = ids[e.Key], DocumentId = documentId, ChunkId = chunkId, Count = e.Count }));
            db.GraphEdges.AddRange(extraction.Relations.Select(r => new GraphEdge
            {
                Id = Guid.NewGuid(), OwnerId = ownerId, SourceId = ids[r.Source], TargetId = ids[r.Target], Relation = r.Relation, Weight = r.Weight,
                DocumentId = documentId, ChunkId = chunkId,
            }));
        }
        await db.SaveChangesAsync(ct);
        await RecountAsync(db, ids.Values.ToList(), ct);
    }

    /// <summary>Removes a document's mentions and edges, then the entities nothing mentions any more.</summary>
    public static async Task RemoveDocumentAsync(AppDbContext db, Guid documentId, CancellationToken ct)
    {
        var touched = await db.GraphMentions.Where(m => m.DocumentId == documentId).Select(m => m.EntityId).Distinct().ToListAsync(ct);
        await db.GraphEdges.Where(e => e.DocumentId == documentId).ExecuteDeleteAsync(ct);
        await db.GraphMentions.Where(m => m.DocumentId == documentId).ExecuteDeleteAsync(ct);
        if (touched.Count == 0) return;
        await db.GraphEntities.Where(e => touched.Contains(e.Id) && !db.GraphMentions.Any(m => m.EntityId == e.Id)).ExecuteDeleteAsync(ct);
        await RecountAsync(db, touched, ct);
    }

    private static Task RecountAsync(AppDbContext db, List<Guid> entityIds, CancellationToken ct) =>
        db.GraphEntities.Where(e => entityIds.Contains(e.Id)).ExecuteUpdateAsync(s => s.SetProperty(
            e => e.MentionCount, e => db.GraphMentions.Where(m => m.EntityId == e.Id).Sum(m => (int?)m.Count) ?? 0), ct);

    /// <summary>The ids of the owner's entities with these keys, creating the missing ones (another node may create
    /// the same one at the same moment: the unique index decides, and the loser reads the winner's row).</summary>
    private async Task<Dictionary<EntityKey, Guid>> EnsureEntitiesAsync(AppDbContext db, Guid ownerId, Dictionary<EntityKey, string> keys, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            var names = keys.Keys.Select(k => k.NormalizedName).Distinct().ToList();
            var existing = await db.GraphEntities.AsNoTracking().Where(e => e.OwnerId == ownerId && names.Contains(e.NormalizedName))
                .Select(e => new { e.Id, e.NormalizedName, e.Type }).ToListAsync(ct);
            var ids = existing.Select(e => (Key: new EntityKey(e.NormalizedName, e.Type), e.Id)).Where(e => keys.ContainsKey(e.Key)).ToDictionary(e => e.Key, e => e.Id);
            var missing = keys.Where(k => !ids.ContainsKey(k.Key)).Select(k => new GraphEntity
            {
                Id = Guid.NewGuid(), OwnerId = ownerId, Name = k.Value, NormalizedName = k.Key.NormalizedName, Type = k.Key.Type,
                CreatedAt = time.GetUtcNow().UtcDateTime,
            }).ToList();
            if (missing.Count == 0) return ids;
            db.GraphEntities.AddRange(missing);
            try
            {
                await db.SaveChangesAsync(ct);
                foreach (var entity in missing) ids[new EntityKey(entity.NormalizedName, entity.Type)] = entity.Id;
                return ids;
            }
            catch (DbUpdateException) when (attempt < 3)
            {
                foreach (var entry in db.ChangeTracker.Entries<GraphEntity>().Where(e => e.State == EntityState.Added).ToList()) entry.State = EntityState.Detached;
            }
        }
    }

    private async Task<ModelEntityExtractor?> ModelExtractorAsync(GraphOptions settings, CancellationToken ct)
    {
        try
        {
            var resolved = await catalog.ResolveAsync(settings.Model.Length == 0 ? null : settings.Model, ct);
            return new ModelEntityExtractor(resolved.Provider.GetChatClient(resolved.ModelId));
        }
        catch (Exception ex) when (ex is ModelNotFoundException or NoModelAvailableException or InferenceUnavailableException)
        {
            logger.LogWarning("Graph extraction uses the rule-based extractor only: {Reason}", ex.Message);
            return null;
        }
    }
}

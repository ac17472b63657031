using System.Text.Json;
using Cloud.Unum.USearch;

namespace Sutazai.Knowledge.Vectors;

/// <summary>
/// The embedded default: USearch HNSW indexes (cosine, float32) in files under one directory.
/// <para>
/// Filtering: the .NET binding has no filtered search, so the owner filter is structural — every owner has an index
/// of their own (<c>&lt;owner&gt;.&lt;generation&gt;.usearch</c>) and a search only ever walks the indexes of the
/// allowed owners, so other owners' vectors can neither crowd out nor leak into the result. Within an owner the
/// collection filter runs as an exact scan over the owner's vectors in those collections when they are at most
/// <see cref="ExactSearchThreshold"/>; above that, HNSW with an over-fetch that grows until k matches are found,
/// falling back to the exact scan if the graph walk still returns fewer than exist.
/// </para>
/// <para>
/// Crash safety: each owner's state is an index file plus a metadata file (<c>&lt;owner&gt;.meta</c>: generation,
/// keys → record ids). A write saves a new generation's index to a temp file, flushes and renames it, then atomically
/// replaces the metadata file, which is the commit point; the old generation is deleted afterwards. A missing or
/// unreadable file sets <see cref="NeedsRebuild"/>; <see cref="RebuildAsync"/> rebuilds from the relational store.
/// </para>
/// All operations are serialized by one async lock.
/// </summary>
public sealed class USearchVectorStore : IVectorStore, IDisposable
{
    private const string StoreFile = "store.json";
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<Guid, OwnerIndex> _owners = [];
    private readonly Dictionary<Guid, Guid> _ownerOfId = [];
    private int _dimensions;
    private bool _disposed;

    public USearchVectorStore(string directory, int exactSearchThreshold = 4096)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        ArgumentOutOfRangeException.ThrowIfNegative(exactSearchThreshold);
        Directory = Path.GetFullPath(directory);
        ExactSearchThreshold = exactSearchThreshold;
    }

    public string Name => "usearch";

    /// <summary>The folder holding the index files.</summary>
    public string Directory { get; }

    /// <summary>Fewest results asked of the HNSW graph per search (its beam width); the best k are kept.</summary>
    public const int MinimumBeam = 128;

    /// <summary>
    /// HNSW graph quality. USearch's defaults (16 links, add beam 128, search beam 64) gave recall@10 0.26 on 20,000
    /// random 384-d vectors; 32 links and beams of 256 gave 0.87 at half the insert rate (measured, performance.md).
    /// Links are stored in the index file; the search beam is not, hence <see cref="MinimumBeam"/>.
    /// </summary>
    public const ulong Connectivity = 32, ExpansionAdd = 256, ExpansionSearch = 256;

    /// <summary>A collection-filtered search over at most this many candidate vectors is exact.</summary>
    public int ExactSearchThreshold { get; }

    /// <summary>Set when opening found an index or metadata file missing or unreadable; searches and writes throw
    /// until <see cref="RebuildAsync"/> runs.</summary>
    public bool NeedsRebuild { get; private set; }

    /// <summary>Why <see cref="NeedsRebuild"/> is set.</summary>
    public string? RebuildReason { get; private set; }

    /// <summary>Vectors held, over all owners.</summary>
    public int Count => _ownerOfId.Count;

    /// <summary>The ids of every vector held (a snapshot), for syncing the index with its source of truth.</summary>
    public async Task<IReadOnlyCollection<Guid>> IdsAsync(CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return [.. _ownerOfId.Keys];
        }
        finally
        {
            _gate.Release();
        }
    }

    public async Task EnsureCollectionAsync(int dimensions, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimensions, 1);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_dimensions != 0)
            {
                if (_dimensions != dimensions)
                {
                    throw new VectorDimensionMismatchException(_dimensions, dimensions, "The requested collection");
                }

                return;
            }

            System.IO.Directory.CreateDirectory(Directory);
            var storePath = Path.Combine(Directory, StoreFile);
            if (File.Exists(storePath))
            {
                var stored = JsonSerializer.Deserialize<StoreInfo>(await File.ReadAllTextAsync(storePath, cancellationToken).ConfigureAwait(false))
                    ?? throw new InvalidDataException($"{storePath} is empty.");
                if (stored.Dimensions != dimensions)
                {
                    throw new VectorDimensionMismatchException(stored.Dimensions, dimensions, "The requested collection");
                }
            }
            else
            {
                WriteAtomically(storePath, JsonSerializer.SerializeToUtf8Bytes(new StoreInfo(dimensions)));
            }

            _dimensions = dimensions;
            LoadOwners();
        }
        finally
        {
            _gate.Release();
        }
    }

    public async Task UpsertAsync(IReadOnlyList<VectorRecord> records, CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            EnsureUsable();
            VectorChecks.Records(records, _dimensions);
            var touched = new HashSet<Guid>();
            foreach (var record in records)
            {
                if (_ownerOfId.TryGetValue(record.Id, out var previousOwner))
                {
                    _owners[previousOwner].Remove(record.Id);
                    _ownerOfId.Remove(record.Id);
                    touched.Add(previousOwner);
                }

                if (!_owners.TryGetValue(record.OwnerId, out var owner))
                {
                    owner = new OwnerIndex(record.OwnerId);
                    _owners[record.OwnerId] = owner;
                }

                owner.Add(record, _dimensions);
                _ownerOfId[record.Id] = record.OwnerId;
                touched.Add(record.OwnerId);
            }

            Persist(touched);
        }
        finally
        {
            _gate.Release();
        }
    }

    public async Task DeleteAsync(IReadOnlyList<Guid> ids, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ids);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            EnsureUsable();
            var touched = new HashSet<Guid>();
            foreach (var id in ids)
            {
                if (_ownerOfId.Remove(id, out var ownerId))
                {
                    _owners[ownerId].Remove(id);
                    touched.Add(ownerId);
                }
            }

            Persist(touched);
        }
        finally
        {
            _gate.Release();
        }
    }

    public async Task DeleteByDocumentAsync(Guid documentId, CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            EnsureUsable();
            var touched = new HashSet<Guid>();
            foreach (var owner in _owners.Values)
            {
                foreach (var id in owner.IdsOfDocument(documentId))
                {
                    owner.Remove(id);
                    _ownerOfId.Remove(id);
                    touched.Add(owner.OwnerId);
                }
            }

            Persist(touched);
        }
        finally
        {
            _gate.Release();
        }
    }

    public async Task<IReadOnlyList<VectorHit>> SearchAsync(
        ReadOnlyMemory<float> query, int k, VectorFilter filter, CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            EnsureUsable();
            VectorChecks.Search(query, k, filter, _dimensions);
            var q = query.ToArray();
            HashSet<Guid>? collections = filter.CollectionIds is null ? null : [.. filter.CollectionIds];
            var hits = new List<VectorHit>();
            foreach (var ownerId in filter.OwnerIds.Distinct())
            {
                if (_owners.TryGetValue(ownerId, out var owner))
                {
                    hits.AddRange(owner.Search(q, k, collections, ExactSearchThreshold));
                }
            }

            return [.. hits.OrderByDescending(h => h.Score).ThenBy(h => h.Id).Take(k)];
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Throws the index files away and builds them again from <paramref name="records"/> (the relational
    /// store's copy). Clears <see cref="NeedsRebuild"/>.</summary>
    public async Task RebuildAsync(IEnumerable<VectorRecord> records, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(records);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_dimensions == 0)
            {
                throw new InvalidOperationException("Call EnsureCollectionAsync before RebuildAsync.");
            }

            var list = records.ToList();
            VectorChecks.Records(list, _dimensions);
            foreach (var owner in _owners.Values)
            {
                owner.Dispose();
            }

            _owners.Clear();
            _ownerOfId.Clear();
            foreach (var file in System.IO.Directory.EnumerateFiles(Directory))
            {
                if (file.EndsWith(".meta", StringComparison.Ordinal) || file.EndsWith(".usearch", StringComparison.Ordinal)
                    || file.EndsWith(".tmp", StringComparison.Ordinal))
                {
                    File.Delete(file);
                }
            }

            foreach (var group in list.GroupBy(r => r.OwnerId))
            {
                cancellationToken.ThrowIfCancellationRequested();
                var owner = new OwnerIndex(group.Key);
                _owners[group.Key] = owner;
                foreach (var record in group)
                {
                    owner.Add(record, _dimensions);
                    _ownerOfId[record.Id] = record.OwnerId;
                }
            }

            Persist(_owners.Keys.ToHashSet());
            NeedsRebuild = false;
            RebuildReason = null;
        }
        finally
        {
            _gate.Release();
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var owner in _owners.Values)
        {
            owner.Dispose();
        }

        _owners.Clear();
        _gate.Dispose();
    }

    private void EnsureUsable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_dimensions == 0)
        {
            throw new InvalidOperationException("Call EnsureCollectionAsync before using the vector store.");
        }

        if (NeedsRebuild)
        {
            throw new InvalidOperationException($"The USearch index in {Directory} needs a rebuild: {RebuildReason}");
        }
    }

    private void LoadOwners()
    {
        foreach (var metaPath in System.IO.Directory.EnumerateFiles(Directory, "*.meta"))
        {
            try
            {
                var meta = JsonSerializer.Deserialize<OwnerMeta>(File.ReadAllBytes(metaPath))
                    ?? throw new InvalidDataException("empty metadata");
                var owner = OwnerIndex.Load(meta, Directory, _dimensions);
                _owners[owner.OwnerId] = owner;
                foreach (var id in owner.Ids)
                {
                    _ownerOfId[id] = owner.OwnerId;
                }
            }
            catch (Exception e) when (e is IOException or InvalidDataException or JsonException or USearchException)
            {
                NeedsRebuild = true;
                RebuildReason = $"{Path.GetFileName(metaPath)}: {e.Message}";
            }
        }
    }

    private void Persist(HashSet<Guid> ownerIds)
    {
        foreach (var ownerId in ownerIds)
        {
            var owner = _owners[ownerId];
            var metaPath = Path.Combine(Directory, $"{ownerId:N}.meta");
            var previous = owner.Generation;
            if (owner.IsEmpty)
            {
                File.Delete(metaPath);
                DeleteIndexFile(ownerId, previous);
                owner.Dispose();
                _owners.Remove(ownerId);
                continue;
            }

            var generation = previous + 1;
            var indexPath = IndexPath(ownerId, generation);
            var tmp = indexPath + ".tmp";
            owner.Index!.Save(tmp);
            FlushToDisk(tmp);
            File.Move(tmp, indexPath, overwrite: true);
            owner.Generation = generation;
            WriteAtomically(metaPath, JsonSerializer.SerializeToUtf8Bytes(owner.ToMeta()));
            DeleteIndexFile(ownerId, previous);
        }
    }

    private void DeleteIndexFile(Guid ownerId, long generation)
    {
        if (generation > 0)
        {
            File.Delete(IndexPath(ownerId, generation));
        }
    }

    private string IndexPath(Guid ownerId, long generation) => Path.Combine(Directory, $"{ownerId:N}.{generation}.usearch");

    private static void WriteAtomically(string path, byte[] content)
    {
        var tmp = path + ".tmp";
        using (var stream = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            stream.Write(content);
            stream.Flush(flushToDisk: true);
        }

        File.Move(tmp, path, overwrite: true);
    }

    private static void FlushToDisk(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
        stream.Flush(flushToDisk: true);
    }

    private sealed record StoreInfo(int Dimensions);

    private sealed record OwnerMeta(Guid OwnerId, long Generation, ulong NextKey, List<EntryMeta> Entries);

    private sealed record EntryMeta(ulong Key, Guid Id, Guid? CollectionId, Guid DocumentId);

    private sealed class OwnerIndex(Guid ownerId) : IDisposable
    {
        private readonly Dictionary<ulong, EntryMeta> _byKey = [];
        private readonly Dictionary<Guid, ulong> _byId = [];
        private ulong _nextKey = 1;

        public Guid OwnerId { get; } = ownerId;

        public long Generation { get; set; }

        public USearchIndex? Index { get; private set; }

        public bool IsEmpty => _byId.Count == 0;

        public IEnumerable<Guid> Ids => _byId.Keys;

        public static OwnerIndex Load(OwnerMeta meta, string directory, int dimensions)
        {
            var owner = new OwnerIndex(meta.OwnerId) { Generation = meta.Generation, _nextKey = meta.NextKey };
            var path = Path.Combine(directory, $"{meta.OwnerId:N}.{meta.Generation}.usearch");
            if (!File.Exists(path))
            {
                throw new InvalidDataException($"index file {Path.GetFileName(path)} is missing");
            }

            owner.Index = new USearchIndex(path);
            if ((int)owner.Index.Dimensions() != dimensions)
            {
                owner.Dispose();
                throw new InvalidDataException($"index file {Path.GetFileName(path)} holds {owner.Index.Dimensions()} dimensions");
            }

            foreach (var entry in meta.Entries)
            {
                if (!owner.Index.Contains(entry.Key))
                {
                    owner.Dispose();
                    throw new InvalidDataException($"index file {Path.GetFileName(path)} lacks vector {entry.Id}");
                }

                owner._byKey[entry.Key] = entry;
                owner._byId[entry.Id] = entry.Key;
            }

            return owner;
        }

        public OwnerMeta ToMeta() => new(OwnerId, Generation, _nextKey, [.. _byKey.Values]);

        public void Add(VectorRecord record, int dimensions)
        {
            Index ??= new USearchIndex(MetricKind.Cos, ScalarKind.Float32, (ulong)dimensions, Connectivity, ExpansionAdd, ExpansionSearch, false);
            var key = _nextKey++;
            Index.Add(key, record.Vector.ToArray());
            _byKey[key] = new EntryMeta(key, record.Id, record.CollectionId, record.DocumentId);
            _byId[record.Id] = key;
        }

        public void Remove(Guid id)
        {
            if (_byId.Remove(id, out var key))
            {
                _byKey.Remove(key);
                Index!.Remove(key);
            }
        }

        public List<Guid> IdsOfDocument(Guid documentId) =>
            [.. _byKey.Values.Where(e => e.DocumentId == documentId).Select(e => e.Id)];

        public IEnumerable<VectorHit> Search(float[] query, int k, HashSet<Guid>? collections, int exactThreshold)
        {
            if (Index is null || _byKey.Count == 0)
            {
                return [];
            }

            bool Allowed(EntryMeta e) => collections is null || (e.CollectionId is { } c && collections.Contains(c));
            var candidates = collections is null ? _byKey.Count : _byKey.Values.Count(Allowed);
            var wanted = Math.Min(k, candidates);
            if (wanted == 0)
            {
                return [];
            }

            if (collections is not null && candidates <= exactThreshold)
            {
                return Exact(query, k, Allowed);
            }

            // USearch's search beam is max(expansion_search, count) and the .NET binding cannot set expansion_search on an
            // index loaded from disk, so every search asks for at least MinimumBeam results and keeps the best k.
            var fetch = Math.Min(_byKey.Count, collections is null ? Math.Max(wanted, MinimumBeam) : Math.Max(k * 8, MinimumBeam));
            while (true)
            {
                Index.Search(query, fetch, out var keys, out var distances);
                var hits = new List<VectorHit>(wanted);
                for (var i = 0; i < keys.Length && hits.Count < wanted; i++)
                {
                    if (_byKey.TryGetValue(keys[i], out var entry) && Allowed(entry))
                    {
                        hits.Add(new VectorHit(entry.Id, entry.DocumentId, 1f - distances[i]));
                    }
                }

                if (hits.Count == wanted)
                {
                    return hits;
                }

                if (fetch >= _byKey.Count)
                {
                    return Exact(query, k, Allowed);
                }

                fetch = (int)Math.Min(_byKey.Count, (long)fetch * 4);
            }
        }

        private IEnumerable<VectorHit> Exact(float[] query, int k, Func<EntryMeta, bool> allowed)
        {
            var hits = new List<VectorHit>();
            foreach (var entry in _byKey.Values)
            {
                if (allowed(entry) && Index!.Get(entry.Key, out float[] vector) > 0)
                {
                    hits.Add(new VectorHit(entry.Id, entry.DocumentId, VectorChecks.Cosine(query, vector)));
                }
            }

            return hits.OrderByDescending(h => h.Score).Take(k);
        }

        public void Dispose()
        {
            Index?.Dispose();
            Index = null;
        }
    }
}

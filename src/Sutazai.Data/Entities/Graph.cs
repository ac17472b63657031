namespace Sutazai.Data.Entities;

/// <summary>
/// A node of an owner's knowledge graph: one thing (person, organisation, e-mail address, URL, handle, concept) named
/// in their documents, found by its normalised name and type. It lives as long as some mention of it does.
/// </summary>
public sealed class GraphEntity
{
    public Guid Id { get; set; }

    public Guid OwnerId { get; set; }

    /// <summary>The name as first seen.</summary>
    public required string Name { get; set; }

    /// <summary>Lower-case, single-spaced name: the identity of the entity within its owner and type.</summary>
    public required string NormalizedName { get; set; }

    public required string Type { get; set; }

    /// <summary>Mentions over all of the owner's documents (the sum of <see cref="GraphMention.Count"/>).</summary>
    public int MentionCount { get; set; }

    public DateTime CreatedAt { get; set; }
}

/// <summary>How often one chunk of a document names an entity.</summary>
public sealed class GraphMention
{
    public Guid Id { get; set; }

    public Guid EntityId { get; set; }

    public Guid DocumentId { get; set; }

    public Guid ChunkId { get; set; }

    public int Count { get; set; }
}

/// <summary>
/// A relation between two entities stated or implied by one chunk: <c>co_occurs</c> (named in the same sentence;
/// weight = sentences) or a pattern or model relation (<c>is_a</c>, <c>ceo_of</c>, …). The graph shown to a user
/// sums the edges of the documents they may read.
/// </summary>
public sealed class GraphEdge
{
    public Guid Id { get; set; }

    public Guid OwnerId { get; set; }

    public Guid SourceId { get; set; }

    public Guid TargetId { get; set; }

    public required string Relation { get; set; }

    public double Weight { get; set; }

    public Guid DocumentId { get; set; }

    public Guid ChunkId { get; set; }
}

public static class GraphLimits
{
    public const int NameLength = 300;
    public const int RelationLength = 64;
}

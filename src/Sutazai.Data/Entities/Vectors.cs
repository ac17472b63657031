namespace Sutazai.Data.Entities;

/// <summary>
/// A user's named collection of raw vectors (the raw vector API). Its dimension count is fixed by the first vector
/// stored; its vectors live in an index namespace of their own, apart from document chunks and other collections.
/// </summary>
public sealed class VectorCollection
{
    public Guid Id { get; set; }

    public Guid OwnerId { get; set; }

    public required string Name { get; set; }

    public int Dimensions { get; set; }

    public DateTime CreatedAt { get; set; }
}

/// <summary>One stored vector: the caller's id, the vector (little-endian float32, kept so the index can be rebuilt)
/// and its metadata as JSON.</summary>
public sealed class VectorPoint
{
    public Guid Id { get; set; }

    public Guid CollectionId { get; set; }

    /// <summary>The id the caller gave, unique within the collection.</summary>
    public required string PointId { get; set; }

    public required byte[] Vector { get; set; }

    /// <summary>The metadata object as the caller sent it (compact JSON).</summary>
    public required string Metadata { get; set; }

    public DateTime UpdatedAt { get; set; }
}

/// <summary>One top-level scalar metadata value of a point, in canonical form, so exact-match filters run in SQL.</summary>
public sealed class VectorPointTag
{
    public Guid PointId { get; set; }

    public required string Key { get; set; }

    public required string Value { get; set; }
}

public static class VectorLimits
{
    public const int NameLength = 100;
    public const int PointIdLength = 256;
    public const int TagKeyLength = 200;
    public const int TagValueLength = 500;
}

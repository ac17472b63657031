namespace Sutazai.Knowledge;

/// <summary>Limits shared by extraction, chunking and indexing.</summary>
public static class KnowledgeLimits
{
    /// <summary>Dimensions of the default embedder (all-MiniLM-L6-v2).</summary>
    public const int MiniLmDimensions = 384;
}

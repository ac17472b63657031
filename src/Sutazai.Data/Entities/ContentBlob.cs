namespace Sutazai.Data.Entities;

/// <summary>One stored file of the database content store (<c>content_blobs</c>); its bytes are in <see cref="ContentBlobPart"/> rows.</summary>
public sealed class ContentBlob
{
    /// <summary>The store key, e.g. <c>documents/&lt;id&gt;</c> or <c>runs/&lt;id&gt;/workspace.zip</c>.</summary>
    public required string Key { get; set; }

    public long Size { get; set; }

    public int Parts { get; set; }

    public DateTime CreatedAt { get; set; }
}

/// <summary>A slice of at most <c>ContentStore.PartBytes</c> of a <see cref="ContentBlob"/> (<c>content_blob_parts</c>).</summary>
public sealed class ContentBlobPart
{
    public required string Key { get; set; }

    public int Index { get; set; }

    public required byte[] Data { get; set; }
}

namespace Sutazai.Data.Entities;

/// <summary>
/// A once-only fact about the installation (for example "the first admin was created"). The primary key makes
/// claiming a flag atomic across concurrent requests and nodes.
/// </summary>
public sealed class SystemFlag
{
    public required string Key { get; set; }

    public string? Value { get; set; }

    public DateTime CreatedAt { get; set; }
}

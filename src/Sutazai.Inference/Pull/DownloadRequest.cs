namespace Sutazai.Inference.Pull;

/// <param name="Url">An absolute http:// or https:// URL (see <see cref="ModelSource.DownloadUrl"/>).</param>
/// <param name="DestinationDirectory">The models directory; created when missing.</param>
/// <param name="FileName">The final file name; must pass <see cref="ModelFileName.IsValid"/> (it is not altered).</param>
public sealed record DownloadRequest(Uri Url, string DestinationDirectory, string FileName)
{
    /// <summary>Hex SHA-256 the file must have. When null, Hugging Face's <c>X-Linked-Etag</c> is used if sent.</summary>
    public string? ExpectedSha256 { get; init; }

    /// <summary>Size in bytes the file must have. The server's Content-Length / Content-Range / X-Linked-Size must agree.</summary>
    public long? ExpectedSize { get; init; }

    /// <summary>A bearer token (a Hugging Face access token for a gated or private repository). It is sent only to the
    /// scheme and host of <see cref="Url"/>, never to a host a redirect points at (Hugging Face's file CDN gets a signed
    /// URL instead), and never written to a log or an error.</summary>
    public string? BearerToken { get; init; }

    public override string ToString() => $"DownloadRequest {{ Url = {Url}, FileName = {FileName}, BearerToken = {(BearerToken is null ? "none" : "***")} }}";
}

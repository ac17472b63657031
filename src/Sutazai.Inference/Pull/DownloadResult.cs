namespace Sutazai.Inference.Pull;

/// <param name="FilePath">Full path of the verified file in the destination directory.</param>
/// <param name="Size">Size in bytes.</param>
/// <param name="Sha256">Lower-case hex SHA-256 of the file.</param>
public sealed record DownloadResult(string FilePath, long Size, string Sha256);

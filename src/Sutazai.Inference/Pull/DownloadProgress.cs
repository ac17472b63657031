namespace Sutazai.Inference.Pull;

public enum DownloadStatus
{
    /// <summary>Bytes are arriving; <see cref="DownloadProgress.Bytes"/> counts what is on disk, resumed bytes included.</summary>
    Downloading,

    /// <summary>Hashing a resumed partial file's prefix, or checking the finished file.</summary>
    Verifying,
}

/// <param name="Bytes">Bytes on disk (or hashed, while verifying).</param>
/// <param name="TotalBytes">The file's size once known (server headers, or the request's expected size).</param>
/// <param name="BytesPerSecond">Transfer rate, exponentially smoothed; 0 while verifying.</param>
/// <param name="Status">What the downloader is doing.</param>
public readonly record struct DownloadProgress(long Bytes, long? TotalBytes, double BytesPerSecond, DownloadStatus Status);

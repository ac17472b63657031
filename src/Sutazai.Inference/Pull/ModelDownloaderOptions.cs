namespace Sutazai.Inference.Pull;

public sealed class ModelDownloaderOptions
{
    /// <summary>
    /// Retries after consecutive failed attempts (dropped connection, stalled read, 408/429/5xx). An attempt that
    /// wrote at least one byte resets the count, so a long download survives any number of separate drops.
    /// </summary>
    public int MaxRetries { get; set; } = 5;

    /// <summary>Delay before the first retry; doubles for each further consecutive failure.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Upper bound for the retry delay.</summary>
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>A read that brings no byte for this long counts as a dropped connection.</summary>
    public TimeSpan ReadTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Minimum time between two Downloading progress reports (the last one is always sent).</summary>
    public TimeSpan ProgressInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Redirects followed when the HttpClient does not follow them itself.</summary>
    public int MaxRedirects { get; set; } = 10;

    public int BufferSize { get; set; } = 128 * 1024;
}

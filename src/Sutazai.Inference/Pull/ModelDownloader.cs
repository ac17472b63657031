using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;

namespace Sutazai.Inference.Pull;

/// <summary>
/// Downloads one GGUF file into a models directory: resumable, retried, verified, and placed atomically.
/// </summary>
/// <remarks>
/// <para>Bytes go to <c>&lt;dest&gt;/.partial/&lt;name&gt;.part</c>; a later call for the same target resumes from it with
/// <c>Range: bytes=N-</c>. Only interruptions (cancellation, network or HTTP failures) keep the partial file; a failed
/// verification deletes it. The empty <c>.partial</c> directory itself is left in place (removing it would race with
/// other downloads into the same directory).</para>
/// <para>Downloads of the same target (same final path) in this process run one after another: the second waits, and
/// on its turn finds the file in place and, once its own copy matches it, returns it. Another process downloading the
/// same target holds the partial file open exclusively, so a call here fails at once with
/// <see cref="ModelDownloadError.TargetBusy"/>. Different targets run concurrently.</para>
/// <para>To see Hugging Face's <c>X-Linked-Etag</c> / <c>X-Linked-Size</c> (sent on the redirect to its CDN), give this
/// class an <see cref="HttpClient"/> whose handler has <c>AllowAutoRedirect = false</c>; redirects are then followed
/// here (https never downgrades to http). With automatic redirects the download still works, unverified by hash unless
/// <see cref="DownloadRequest.ExpectedSha256"/> is given.</para>
/// </remarks>
public sealed class ModelDownloader
{
    public const string PartialDirectoryName = ".partial";

    public const string PartialFileSuffix = ".part";

    private static readonly KeyedAsyncLock TargetLocks = new(
        OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal);

    private readonly HttpClient _http;
    private readonly TimeProvider _time;
    private readonly ModelDownloaderOptions _options;

    public ModelDownloader(HttpClient httpClient, TimeProvider timeProvider, ModelDownloaderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(httpClient);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _http = httpClient;
        _time = timeProvider;
        _options = options ?? new ModelDownloaderOptions();
        if (_options.MaxRetries < 0 || _options.BufferSize < 4 || _options.MaxRedirects < 0)
        {
            throw new ArgumentException("MaxRetries and MaxRedirects must be >= 0 and BufferSize >= 4.", nameof(options));
        }
    }

    /// <summary>Where the partial file of a target lives.</summary>
    public static string GetPartialPath(string destinationDirectory, string fileName) =>
        Path.Combine(Path.GetFullPath(destinationDirectory), PartialDirectoryName, fileName + PartialFileSuffix);

    /// <exception cref="ArgumentException">The request is invalid (URL, file name, checksum or size format).</exception>
    /// <exception cref="ModelDownloadException">The download failed; <see cref="ModelDownloadException.Error"/> says how.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the partial file is kept for resuming.</exception>
    public async Task<DownloadResult> DownloadAsync(
        DownloadRequest request, IProgress<DownloadProgress>? progress, CancellationToken cancellationToken)
    {
        var target = Target.From(request);
        using var held = await TargetLocks.AcquireAsync(target.FinalPath, cancellationToken);
        Directory.CreateDirectory(target.PartialDirectory);

        if (target.ExpectedSha256 is not null && File.Exists(target.FinalPath))
        {
            var existing = await DescribeAsync(target.FinalPath, cancellationToken);
            if (existing.Sha256 == target.ExpectedSha256 && (target.ExpectedSize ?? existing.Size) == existing.Size && existing.IsGguf)
            {
                return new DownloadResult(target.FinalPath, existing.Size, existing.Sha256);
            }

            throw Conflict(target, existing.Sha256);
        }

        DownloadResult downloaded;
        try
        {
            downloaded = await TransferAsync(target, progress, cancellationToken);
        }
        catch (ModelDownloadException e) when (e.Error is ModelDownloadError.SizeMismatch or ModelDownloadError.ChecksumMismatch
            or ModelDownloadError.NotGguf)
        {
            File.Delete(target.PartialPath);
            throw;
        }

        return await PlaceAsync(target, downloaded, cancellationToken);
    }

    /// <summary>Test hook: how many calls hold or wait for the lock of a final path.</summary>
    internal static int LockHoldersFor(string finalPath) => TargetLocks.CountFor(Path.GetFullPath(finalPath));

    private async Task<DownloadResult> TransferAsync(Target target, IProgress<DownloadProgress>? progress, CancellationToken ct)
    {
        FileStream file;
        try
        {
            file = new FileStream(target.PartialPath, new FileStreamOptions
            {
                Mode = FileMode.OpenOrCreate,
                Access = FileAccess.ReadWrite,
                Share = FileShare.None,
                BufferSize = 0,
            });
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException and not PathTooLongException)
        {
            throw new ModelDownloadException(
                ModelDownloadError.TargetBusy,
                $"'{target.FileName}' is already being downloaded into '{target.Directory}' by another process ({e.Message}).",
                e);
        }

        await using (file)
        {
            using var transfer = new Transfer(this, target, file, progress);
            return await transfer.RunAsync(ct);
        }
    }

    private static async Task<DownloadResult> PlaceAsync(Target target, DownloadResult downloaded, CancellationToken ct)
    {
        if (!File.Exists(target.FinalPath) && TryMoveIntoPlace(target))
        {
            return downloaded;
        }

        var sameSize = new FileInfo(target.FinalPath).Length == downloaded.Size;
        var existingSha = sameSize ? (await DescribeAsync(target.FinalPath, ct)).Sha256 : null;
        File.Delete(target.PartialPath);
        return existingSha == downloaded.Sha256 ? downloaded : throw Conflict(target, existingSha);
    }

    private static bool TryMoveIntoPlace(Target target)
    {
        try
        {
            // Same directory tree, same file system: a rename, and with overwrite: false it never clobbers.
            File.Move(target.PartialPath, target.FinalPath, overwrite: false);
            return true;
        }
        catch (IOException) when (File.Exists(target.FinalPath))
        {
            // Another process placed a file between the check and the move; the caller compares the two.
            return false;
        }
    }

    private static ModelDownloadException Conflict(Target target, string? existingSha256) => new(
        ModelDownloadError.DestinationConflict,
        $"'{target.FileName}' already exists in '{target.Directory}' with different content"
        + (existingSha256 is null ? " (different size)" : $" (SHA-256 {existingSha256})")
        + "; delete it or choose another name.");

    private static async Task<(long Size, string Sha256, bool IsGguf)> DescribeAsync(string path, CancellationToken ct)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
        var head = new byte[4];
        var headLength = await stream.ReadAtLeastAsync(head, head.Length, throwOnEndOfStream: false, ct);
        stream.Position = 0;
        var sha = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, ct));
        return (stream.Length, sha, headLength == 4 && head.AsSpan().SequenceEqual("GGUF"u8));
    }

    private static bool IsSha256Hex(string value) => value.Length == 64 && value.All(char.IsAsciiHexDigit);

    private static bool IsRetryable(HttpStatusCode status) => status is HttpStatusCode.RequestTimeout
        or HttpStatusCode.TooManyRequests or HttpStatusCode.InternalServerError or HttpStatusCode.BadGateway
        or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout;

    private static bool IsRedirect(HttpStatusCode status) => status is HttpStatusCode.MovedPermanently or HttpStatusCode.Found
        or HttpStatusCode.SeeOther or HttpStatusCode.TemporaryRedirect or HttpStatusCode.PermanentRedirect;

    private sealed record Target(
        Uri Url, string Directory, string FileName, string FinalPath, string PartialDirectory, string PartialPath,
        string? ExpectedSha256, long? ExpectedSize, string? BearerToken)
    {
        public static Target From(DownloadRequest request)
        {
            ArgumentNullException.ThrowIfNull(request);
            if (request.Url is null || !request.Url.IsAbsoluteUri
                || (request.Url.Scheme != Uri.UriSchemeHttp && request.Url.Scheme != Uri.UriSchemeHttps))
            {
                throw new ArgumentException("Download URL must be an absolute http:// or https:// URL.", nameof(request));
            }

            if (string.IsNullOrWhiteSpace(request.DestinationDirectory))
            {
                throw new ArgumentException("Destination directory is empty.", nameof(request));
            }

            if (!ModelFileName.IsValid(request.FileName, out var nameError))
            {
                throw new ArgumentException(nameError, nameof(request));
            }

            var sha = request.ExpectedSha256?.Trim().ToLowerInvariant();
            if (sha is not null && !IsSha256Hex(sha))
            {
                throw new ArgumentException("Expected SHA-256 must be 64 hexadecimal characters.", nameof(request));
            }

            if (request.ExpectedSize is <= 0)
            {
                throw new ArgumentException("Expected size must be positive.", nameof(request));
            }

            var directory = Path.GetFullPath(request.DestinationDirectory);
            var partialDirectory = Path.Combine(directory, PartialDirectoryName);
            return new Target(
                request.Url, directory, request.FileName, Path.Combine(directory, request.FileName), partialDirectory,
                Path.Combine(partialDirectory, request.FileName + PartialFileSuffix), sha, request.ExpectedSize,
                string.IsNullOrWhiteSpace(request.BearerToken) ? null : request.BearerToken.Trim());
        }
    }

    /// <summary>A failure worth another attempt (dropped or stalled connection, 408/429/5xx).</summary>
    private sealed class TransientFailure(string message, Exception? inner, HttpStatusCode? status) : Exception(message, inner)
    {
        public HttpStatusCode? StatusCode { get; } = status;
    }

    private enum AttemptOutcome
    {
        Complete,
        Restart,
    }

    /// <summary>The state of one download: the open partial file, the running hash and what the server told us.</summary>
    private sealed class Transfer(ModelDownloader owner, Target target, FileStream file, IProgress<DownloadProgress>? progress)
        : IDisposable
    {
        private static readonly TimeSpan RateTimeConstant = TimeSpan.FromSeconds(3);
        private static readonly TimeSpan RateMinSample = TimeSpan.FromMilliseconds(100);

        private readonly ModelDownloaderOptions _options = owner._options;
        private readonly byte[] _buffer = new byte[owner._options.BufferSize];
        private readonly byte[] _head = new byte[4];
        private readonly TransferRateMeter _meter = new(RateTimeConstant, RateMinSample);
        private readonly long _started = owner._time.GetTimestamp();
        private IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private long _written;
        private long? _total;
        private string? _linkedSha256;
        private bool _magicChecked;
        private TimeSpan? _lastReport;
        private DownloadProgress? _lastReported;

        private TimeSpan Now => owner._time.GetElapsedTime(_started);

        public void Dispose() => _hash.Dispose();

        public async Task<DownloadResult> RunAsync(CancellationToken ct)
        {
            _written = file.Length;
            if (_written > 0)
            {
                await HashExistingPrefixAsync(ct);
            }

            _meter.Start(_written, Now);
            var failures = 0;
            while (true)
            {
                ct.ThrowIfCancellationRequested();
                var before = _written;
                try
                {
                    if (await AttemptAsync(ct) == AttemptOutcome.Complete)
                    {
                        break;
                    }
                }
                catch (TransientFailure failure)
                {
                    failures = _written > before ? 1 : failures + 1;
                    if (failures > _options.MaxRetries)
                    {
                        throw new ModelDownloadException(
                            failure.StatusCode is null ? ModelDownloadError.NetworkFailure : ModelDownloadError.HttpError,
                            $"Download of {target.Url} failed after {failures} attempts: {failure.Message}.",
                            failure.InnerException)
                        { StatusCode = failure.StatusCode };
                    }

                    await Task.Delay(RetryDelay(failures), owner._time, ct);
                }
            }

            return Verify();
        }

        private TimeSpan RetryDelay(int failures)
        {
            var ticks = _options.RetryBaseDelay.Ticks * Math.Pow(2, failures - 1);
            return TimeSpan.FromTicks((long)Math.Min(ticks, _options.RetryMaxDelay.Ticks));
        }

        private async Task HashExistingPrefixAsync(CancellationToken ct)
        {
            file.Position = 0;
            long hashed = 0;
            Report(DownloadStatus.Verifying, 0, _written, force: true);
            while (hashed < _written)
            {
                var read = await file.ReadAsync(_buffer.AsMemory(0, (int)Math.Min(_buffer.Length, _written - hashed)), ct);
                if (read == 0)
                {
                    break;
                }

                Append(_buffer.AsSpan(0, read), hashed);
                hashed += read;
                Report(DownloadStatus.Verifying, hashed, _written, force: hashed == _written);
            }

            _written = hashed;
            file.Position = hashed;
            CheckMagic();
        }

        private async Task<AttemptOutcome> AttemptAsync(CancellationToken ct)
        {
            var offset = _written;
            using var response = await SendAsync(offset, ct);
            var status = response.StatusCode;
            if (status == HttpStatusCode.PartialContent)
            {
                var range = response.Content.Headers.ContentRange;
                if (range is null || !string.Equals(range.Unit, "bytes", StringComparison.OrdinalIgnoreCase)
                    || range.From != offset || range.To is null || range.To < range.From
                    || (range.Length is long length && range.To != length - 1))
                {
                    // The server does not do what was asked; start over without a Range header.
                    RestartFromZero();
                    throw new TransientFailure(
                        $"server answered 'Range: bytes={offset}-' with Content-Range '{range?.ToString() ?? "(none)"}'", null, null);
                }

                if (range.Length is long total)
                {
                    LearnTotal(total);
                }
            }
            else if (status == HttpStatusCode.OK)
            {
                if (offset > 0)
                {
                    // The server ignored the Range header and sends the whole file.
                    RestartFromZero();
                }

                if (response.Content.Headers.ContentLength is long length)
                {
                    LearnTotal(length);
                }
            }
            else if (status == HttpStatusCode.RequestedRangeNotSatisfiable && offset > 0)
            {
                var total = response.Content.Headers.ContentRange?.Length ?? _total ?? target.ExpectedSize;
                if (total == offset)
                {
                    LearnTotal(offset);
                    return AttemptOutcome.Complete;
                }

                // The partial file is longer than the resource (or the server will not say): start over.
                RestartFromZero();
                return AttemptOutcome.Restart;
            }
            else if (IsRetryable(status))
            {
                throw new TransientFailure($"HTTP {(int)status} ({status})", null, status);
            }
            else
            {
                var hint = status is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden
                    ? target.BearerToken is null
                        ? " The file needs an access token (a gated or private repository): set HF_TOKEN or Sutazai:Inference:Pull:HuggingFaceToken."
                        : " The access token was refused: check that it is valid and that its account has accepted the repository's terms."
                    : "";
                throw new ModelDownloadException(
                    ModelDownloadError.HttpError, $"Download of {target.Url} failed: HTTP {(int)status} ({status}).{hint}")
                { StatusCode = status };
            }

            await CopyBodyAsync(response, ct);
            return AttemptOutcome.Complete;
        }

        private async Task<HttpResponseMessage> SendAsync(long offset, CancellationToken ct)
        {
            var url = target.Url;
            for (var hop = 0; ; hop++)
            {
                var message = new HttpRequestMessage(HttpMethod.Get, url);
                if (offset > 0)
                {
                    message.Headers.Range = new RangeHeaderValue(offset, null);
                }

                message.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
                if (target.BearerToken is not null && url.Scheme == target.Url.Scheme && string.Equals(url.Authority, target.Url.Authority, StringComparison.OrdinalIgnoreCase))
                {
                    message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", target.BearerToken);
                }

                HttpResponseMessage response;
                try
                {
                    response = await owner._http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, ct);
                }
                catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException)
                {
                    ct.ThrowIfCancellationRequested();
                    throw new TransientFailure($"request failed: {e.Message}", e, null);
                }

                try
                {
                    LearnLinkedHeaders(response);
                }
                catch (ModelDownloadException)
                {
                    response.Dispose();
                    throw;
                }

                if (!IsRedirect(response.StatusCode) || response.Headers.Location is not Uri location)
                {
                    return response;
                }

                response.Dispose();
                var next = location.IsAbsoluteUri ? location : new Uri(url, location);
                if (hop >= _options.MaxRedirects)
                {
                    throw new ModelDownloadException(
                        ModelDownloadError.InvalidResponse,
                        $"Download of {target.Url} failed: more than {_options.MaxRedirects} redirects.");
                }

                if ((next.Scheme != Uri.UriSchemeHttp && next.Scheme != Uri.UriSchemeHttps)
                    || (url.Scheme == Uri.UriSchemeHttps && next.Scheme != Uri.UriSchemeHttps))
                {
                    throw new ModelDownloadException(
                        ModelDownloadError.InvalidResponse,
                        $"Download of {target.Url} failed: refusing redirect from {url.Scheme} to {next.Scheme}.");
                }

                url = next;
            }
        }

        private void LearnLinkedHeaders(HttpResponseMessage response)
        {
            if (response.Headers.TryGetValues("X-Linked-Size", out var sizes)
                && long.TryParse(sizes.First(), NumberStyles.None, CultureInfo.InvariantCulture, out var size))
            {
                LearnTotal(size);
            }

            if (target.ExpectedSha256 is null && response.Headers.TryGetValues("X-Linked-Etag", out var etags))
            {
                // Hugging Face puts the LFS object's SHA-256 there, quoted (sometimes weak: W/"...").
                var etag = etags.First().Trim();
                etag = (etag.StartsWith("W/", StringComparison.Ordinal) ? etag[2..] : etag).Trim('"').ToLowerInvariant();
                if (IsSha256Hex(etag))
                {
                    _linkedSha256 = etag;
                }
            }
        }

        private void LearnTotal(long reported)
        {
            if (target.ExpectedSize is long expected && expected != reported)
            {
                throw SizeMismatch($"Size mismatch: expected {expected} bytes, server reports {reported} bytes.");
            }

            if (_total is long known && known != reported)
            {
                throw SizeMismatch($"Size mismatch: server reported {known} bytes, later {reported} bytes.");
            }

            _total = reported;
        }

        private async Task CopyBodyAsync(HttpResponseMessage response, CancellationToken ct)
        {
            using var stall = new CancellationTokenSource(_options.ReadTimeout, owner._time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, stall.Token);
            Report(DownloadStatus.Downloading, _written, _total ?? target.ExpectedSize, force: true);
            await using var body = await ReadNetworkAsync(() => response.Content.ReadAsStreamAsync(linked.Token));
            while (true)
            {
                stall.CancelAfter(_options.ReadTimeout);
                var read = await ReadNetworkAsync(() => body.ReadAsync(_buffer, linked.Token).AsTask());
                if (read == 0)
                {
                    break;
                }

                if ((_total ?? target.ExpectedSize) is long limit && _written + read > limit)
                {
                    throw SizeMismatch($"Size mismatch: expected {limit} bytes, server sent more.");
                }

                // Disk errors (full, read-only) are not network trouble: they propagate and are not retried.
                await file.WriteAsync(_buffer.AsMemory(0, read), ct);
                Append(_buffer.AsSpan(0, read), _written);
                _written += read;
                CheckMagic();
                Report(DownloadStatus.Downloading, _written, _total ?? target.ExpectedSize, force: false);
            }

            if (_total is long total && _written < total)
            {
                throw new TransientFailure($"connection closed after {_written} of {total} bytes", null, null);
            }

            Report(DownloadStatus.Downloading, _written, _total ?? target.ExpectedSize, force: true);

            async Task<T> ReadNetworkAsync<T>(Func<Task<T>> read)
            {
                try
                {
                    return await read();
                }
                catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException)
                {
                    ct.ThrowIfCancellationRequested();
                    throw new TransientFailure(
                        stall.IsCancellationRequested
                            ? $"no data for {_options.ReadTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s"
                            : $"connection lost: {e.Message}",
                        e,
                        null);
                }
            }
        }

        private void Append(ReadOnlySpan<byte> chunk, long offset)
        {
            _hash.AppendData(chunk);
            for (var i = 0; offset + i < _head.Length && i < chunk.Length; i++)
            {
                _head[offset + i] = chunk[i];
            }
        }

        private void CheckMagic()
        {
            if (_magicChecked || _written < _head.Length)
            {
                return;
            }

            _magicChecked = true;
            if (!_head.AsSpan().SequenceEqual("GGUF"u8))
            {
                var printable = new string(_head.Select(b => b is >= 0x20 and < 0x7F ? (char)b : '.').ToArray());
                throw new ModelDownloadException(
                    ModelDownloadError.NotGguf, $"Not a GGUF file (magic {Convert.ToHexString(_head)} \"{printable}\").");
            }
        }

        private void RestartFromZero()
        {
            file.SetLength(0);
            file.Position = 0;
            _written = 0;
            _magicChecked = false;
            _hash.Dispose();
            _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            _meter.Start(0, Now);
        }

        private DownloadResult Verify()
        {
            Report(DownloadStatus.Verifying, _written, _written, force: true);
            if (target.ExpectedSize is long expected && expected != _written)
            {
                throw SizeMismatch($"Size mismatch: expected {expected} bytes, got {_written} bytes.");
            }

            if (_written < _head.Length)
            {
                throw new ModelDownloadException(ModelDownloadError.NotGguf, $"Not a GGUF file (only {_written} bytes).");
            }

            CheckMagic();
            var sha = Convert.ToHexStringLower(_hash.GetHashAndReset());
            var wanted = target.ExpectedSha256 ?? _linkedSha256;
            if (wanted is not null && wanted != sha)
            {
                throw new ModelDownloadException(ModelDownloadError.ChecksumMismatch, $"SHA-256 mismatch: expected {wanted}, got {sha}.");
            }

            // Durable before the rename makes it visible under its final name.
            file.Flush(flushToDisk: true);
            return new DownloadResult(target.FinalPath, _written, sha);
        }

        private void Report(DownloadStatus status, long bytes, long? total, bool force)
        {
            if (progress is null)
            {
                return;
            }

            var now = Now;
            var rate = status == DownloadStatus.Downloading ? _meter.Observe(bytes, now) : 0;
            if (!force && _lastReport is TimeSpan last && now - last < _options.ProgressInterval)
            {
                return;
            }

            // Forced reports at the end of a phase would otherwise repeat the last one.
            if (_lastReported is { } previous && previous.Bytes == bytes && previous.TotalBytes == total && previous.Status == status)
            {
                return;
            }

            _lastReport = now;
            _lastReported = new DownloadProgress(bytes, total, rate, status);
            progress.Report(_lastReported.Value);
        }

        private static ModelDownloadException SizeMismatch(string message) => new(ModelDownloadError.SizeMismatch, message);
    }
}

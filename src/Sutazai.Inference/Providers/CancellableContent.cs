using System.Net;

namespace Sutazai.Inference.Providers;

/// <summary>
/// Wraps a streamed response body so every read also observes the caller's token. OllamaSharp 5.5.2 reads its
/// NDJSON with <c>StreamReader.ReadLineAsync()</c> (no token) and only checks the token between lines, so without
/// this a cancelled stream would block until the server sent its next line. Cancelling a pending read aborts the
/// connection, which the server sees. With <c>errorLine</c> it also watches the NDJSON for Ollama's
/// <c>{"error": "…"}</c> line (sent mid-stream when a runner crashes or a pull fails), which OllamaSharp skips, and
/// throws the exception it makes from the server's text instead of letting the stream pass for a short answer.
/// </summary>
internal sealed class CancellableContent : HttpContent
{
    private readonly HttpContent _inner;
    private readonly CancellationToken _token;
    private readonly Func<string, Exception>? _errorLine;

    internal CancellableContent(HttpContent inner, CancellationToken token, Func<string, Exception>? errorLine = null)
    {
        _inner = inner;
        _token = token;
        _errorLine = errorLine;
        foreach (var header in inner.Headers)
        {
            Headers.TryAddWithoutValidation(header.Key, header.Value);
        }
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        _inner.CopyToAsync(stream, _token);

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken) =>
        _inner.CopyToAsync(stream, cancellationToken.CanBeCanceled ? cancellationToken : _token);

    protected override async Task<Stream> CreateContentReadStreamAsync() =>
        new CancellableReadStream(await _inner.ReadAsStreamAsync(_token).ConfigureAwait(false), _token, _errorLine);

    protected override async Task<Stream> CreateContentReadStreamAsync(CancellationToken cancellationToken) =>
        new CancellableReadStream(await _inner.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false), _token, _errorLine);

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inner.Dispose();
        }

        base.Dispose(disposing);
    }

    private sealed class CancellableReadStream(Stream inner, CancellationToken token, Func<string, Exception>? errorLine) : Stream
    {
        private const int LineStartKept = 4096;
        private static readonly byte[] ErrorPrefix = "{\"error\""u8.ToArray();
        private readonly byte[] _line = new byte[LineStartKept];
        private int _lineLength;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            token.ThrowIfCancellationRequested();
            return Watch(buffer.AsSpan(offset, count), inner.Read(buffer, offset, count));
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            int read;
            if (!cancellationToken.CanBeCanceled || cancellationToken == token || !token.CanBeCanceled)
            {
                read = await inner.ReadAsync(buffer, cancellationToken.CanBeCanceled ? cancellationToken : token).ConfigureAwait(false);
            }
            else
            {
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(token, cancellationToken);
                read = await inner.ReadAsync(buffer, linked.Token).ConfigureAwait(false);
            }

            return Watch(buffer.Span, read);
        }

        /// <summary>Keeps the start of the current line; at each line end (and at the end of the body) checks it for an error line.</summary>
        private int Watch(ReadOnlySpan<byte> buffer, int read)
        {
            if (errorLine is null)
            {
                return read;
            }

            if (read == 0)
            {
                CheckLine();
                return 0;
            }

            foreach (var b in buffer[..read])
            {
                if (b == (byte)'\n')
                {
                    CheckLine();
                }
                else if (_lineLength < _line.Length)
                {
                    _line[_lineLength++] = b;
                }
            }

            return read;
        }

        private void CheckLine()
        {
            var line = _line.AsSpan(0, _lineLength).Trim(" \t\r"u8);
            _lineLength = 0;
            if (!line.StartsWith(ErrorPrefix))
            {
                return;
            }

            try
            {
                using var document = System.Text.Json.JsonDocument.Parse(line.ToArray());
                if (document.RootElement.TryGetProperty("error", out var error) && error.ValueKind == System.Text.Json.JsonValueKind.String)
                {
                    throw errorLine!(error.GetString() ?? "");
                }
            }
            catch (System.Text.Json.JsonException)
            {
                // Longer than what is kept, or not JSON: OllamaSharp's own reading reports it.
            }
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        public override ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}

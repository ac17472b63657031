using System.Net;

namespace Sutazai.Inference.Providers;

/// <summary>
/// Wraps a streamed response body so every read also observes the caller's token. OllamaSharp 5.5.2 reads its
/// NDJSON with <c>StreamReader.ReadLineAsync()</c> (no token) and only checks the token between lines, so without
/// this a cancelled stream would block until the server sent its next line. Cancelling a pending read aborts the
/// connection, which the server sees.
/// </summary>
internal sealed class CancellableContent : HttpContent
{
    private readonly HttpContent _inner;
    private readonly CancellationToken _token;

    internal CancellableContent(HttpContent inner, CancellationToken token)
    {
        _inner = inner;
        _token = token;
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
        new CancellableReadStream(await _inner.ReadAsStreamAsync(_token).ConfigureAwait(false), _token);

    protected override async Task<Stream> CreateContentReadStreamAsync(CancellationToken cancellationToken) =>
        new CancellableReadStream(await _inner.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false), _token);

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

    private sealed class CancellableReadStream(Stream inner, CancellationToken token) : Stream
    {
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
            return inner.Read(buffer, offset, count);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (!cancellationToken.CanBeCanceled || cancellationToken == token)
            {
                return inner.ReadAsync(buffer, token);
            }

            return token.CanBeCanceled ? ReadLinkedAsync(buffer, cancellationToken) : inner.ReadAsync(buffer, cancellationToken);
        }

        private async ValueTask<int> ReadLinkedAsync(Memory<byte> buffer, CancellationToken cancellationToken)
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(token, cancellationToken);
            return await inner.ReadAsync(buffer, linked.Token).ConfigureAwait(false);
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

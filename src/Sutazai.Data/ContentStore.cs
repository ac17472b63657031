using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Data.Entities;

namespace Sutazai.Data;

/// <summary>
/// Where files that every node must read are kept: uploaded originals and finished runs' workspaces. Keys are made by
/// the server from ids (<c>documents/&lt;id&gt;</c>, <c>runs/&lt;id&gt;/workspace.zip</c>), never from names users send.
/// <see cref="FileContentStore"/> keeps them in the data dir (one node); <see cref="DatabaseContentStore"/> in the
/// database every node shares (several nodes: <c>Sutazai:Storage:Content</c>).
/// </summary>
public interface IContentStore
{
    /// <summary><c>filesystem</c> or <c>database</c>.</summary>
    string Kind { get; }

    /// <summary>Stores <paramref name="content"/> under <paramref name="key"/>, replacing what was there; readers see the old or the new content whole.</summary>
    Task PutAsync(string key, Stream content, CancellationToken ct);

    /// <summary>The content, read as a stream, or null when nothing is stored under the key.</summary>
    Task<Stream?> OpenAsync(string key, CancellationToken ct);

    Task DeleteAsync(string key, CancellationToken ct);
}

/// <summary>Files under a folder of the data dir, owner-only, written to a temp file and moved into place.</summary>
public sealed class FileContentStore(string root) : IContentStore
{
    public string Kind => "filesystem";

    public string Root { get; } = root;

    public string PathOf(string key) => Path.Combine(Root, Path.Combine(key.Split('/')));

    public async Task PutAsync(string key, Stream content, CancellationToken ct)
    {
        var path = PathOf(key);
        PrivateFiles.CreateDirectory(Path.GetDirectoryName(path)!);
        var temp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        try
        {
            await using (var file = new FileStream(temp, PrivateFiles.CreateOptions(FileMode.CreateNew)))
            {
                await content.CopyToAsync(file, ct);
            }
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    public Task<Stream?> OpenAsync(string key, CancellationToken ct)
    {
        var path = PathOf(key);
        return Task.FromResult<Stream?>(File.Exists(path) ? File.OpenRead(path) : null);
    }

    public Task DeleteAsync(string key, CancellationToken ct)
    {
        var path = PathOf(key);
        if (File.Exists(path)) File.Delete(path);
        return Task.CompletedTask;
    }
}

/// <summary>
/// Files in the shared database, cut into parts of <see cref="PartBytes"/> (<c>content_blob_parts</c>) so that neither
/// writing nor reading ever holds a whole file in memory. A put writes the parts and the head row in one transaction,
/// so a reader on any node sees the old file or the new one, never half of one.
/// </summary>
public sealed class DatabaseContentStore(IServiceScopeFactory scopes, TimeProvider time) : IContentStore
{
    public const int PartBytes = 1 << 20;

    public string Kind => "database";

    public async Task PutAsync(string key, Stream content, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        // No retrying execution strategy around this: a retry could not read the caller's stream a second time.
        {
            await using var transaction = await db.Database.BeginTransactionAsync(ct);
            await db.Set<ContentBlobPart>().Where(p => p.Key == key).ExecuteDeleteAsync(ct);
            await db.Set<ContentBlob>().Where(b => b.Key == key).ExecuteDeleteAsync(ct);
            var buffer = new byte[PartBytes];
            long size = 0;
            var index = 0;
            while (true)
            {
                var filled = 0;
                int read;
                while (filled < PartBytes && (read = await content.ReadAsync(buffer.AsMemory(filled), ct)) > 0) filled += read;
                if (filled == 0 && index > 0) break;
                db.Set<ContentBlobPart>().Add(new ContentBlobPart { Key = key, Index = index++, Data = buffer[..filled] });
                await db.SaveChangesAsync(ct);
                db.ChangeTracker.Clear();
                size += filled;
                if (filled < PartBytes) break;
            }
            db.Set<ContentBlob>().Add(new ContentBlob { Key = key, Size = size, Parts = index, CreatedAt = time.GetUtcNow().UtcDateTime });
            await db.SaveChangesAsync(ct);
            await transaction.CommitAsync(ct);
        }
    }

    public async Task<Stream?> OpenAsync(string key, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var blob = await db.Set<ContentBlob>().AsNoTracking().FirstOrDefaultAsync(b => b.Key == key, ct);
        return blob is null ? null : new PartStream(scopes, blob);
    }

    public async Task DeleteAsync(string key, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        await db.Set<ContentBlob>().Where(b => b.Key == key).ExecuteDeleteAsync(ct);
        await db.Set<ContentBlobPart>().Where(p => p.Key == key).ExecuteDeleteAsync(ct);
    }

    /// <summary>Reads a blob part by part, one database round trip per part, as the caller asks for bytes.</summary>
    private sealed class PartStream(IServiceScopeFactory scopes, ContentBlob blob) : Stream
    {
        private byte[] _part = [];
        private int _offset;
        private int _next;
        private long _position;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => blob.Size;

        public override long Position
        {
            get => _position;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            while (_offset == _part.Length)
            {
                if (_next >= blob.Parts) return 0;
                await using var scope = scopes.CreateAsyncScope();
                var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
                var index = _next;
                _part = await db.Set<ContentBlobPart>().AsNoTracking().Where(p => p.Key == blob.Key && p.Index == index).Select(p => p.Data).FirstOrDefaultAsync(cancellationToken)
                    ?? throw new IOException($"Part {index} of stored file {blob.Key} is missing (the file was replaced or deleted while it was read).");
                _offset = 0;
                _next++;
            }
            var count = Math.Min(buffer.Length, _part.Length - _offset);
            _part.AsMemory(_offset, count).CopyTo(buffer);
            _offset += count;
            _position += count;
            return count;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

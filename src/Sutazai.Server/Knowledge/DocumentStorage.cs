using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Server.Configuration;

namespace Sutazai.Server.Knowledge;

/// <summary>
/// Original files, in the content store under <c>documents/&lt;id&gt;</c> (the data dir's <c>documents/</c> folder,
/// or the shared database: <c>Sutazai:Storage:Content</c>). The key comes from the document's id only: no name or
/// path a user sent ever reaches the file system. With the database store, an original an earlier version left in the
/// data dir is still read from there (and deleted with its document).
/// </summary>
public sealed class DocumentStorage(IContentStore store, IOptions<SutazaiOptions> app)
{
    private static string Key(Guid id) => $"documents/{id:N}";

    private string LegacyPath(Guid id) => Path.Combine(app.Value.DataPath, "documents", id.ToString("N"));

    public Task SaveAsync(Guid id, Stream content, CancellationToken ct) => store.PutAsync(Key(id), content, ct);

    /// <summary>The original; <see cref="FileNotFoundException"/> when it is stored nowhere.</summary>
    public async Task<Stream> OpenAsync(Guid id, CancellationToken ct)
    {
        if (await store.OpenAsync(Key(id), ct) is { } stored) return stored;
        var legacy = LegacyPath(id);
        return store.Kind != "filesystem" && File.Exists(legacy)
            ? File.OpenRead(legacy)
            : throw new FileNotFoundException($"The original of document {id} is not in the {store.Kind} content store.", Key(id));
    }

    /// <summary>
    /// The original as a seekable stream (PDF and Office readers need one): a database-stored original is copied into
    /// an owner-only temp file under <c>&lt;DataDir&gt;/tmp</c> that is deleted when the stream is closed.
    /// </summary>
    public async Task<Stream> OpenSeekableAsync(Guid id, CancellationToken ct)
    {
        var stream = await OpenAsync(id, ct);
        if (stream.CanSeek) return stream;
        await using (stream)
        {
            var copy = PrivateFiles.CreateScratch(Path.Combine(app.Value.DataPath, "tmp"), $"document-{id:N}-{Guid.NewGuid():N}.tmp", deleteOnClose: true);
            try
            {
                await stream.CopyToAsync(copy, ct);
                copy.Position = 0;
                return copy;
            }
            catch
            {
                await copy.DisposeAsync();
                throw;
            }
        }
    }

    public async Task DeleteAsync(Guid id, CancellationToken ct)
    {
        await store.DeleteAsync(Key(id), ct);
        var legacy = LegacyPath(id);
        if (File.Exists(legacy)) File.Delete(legacy);
    }
}

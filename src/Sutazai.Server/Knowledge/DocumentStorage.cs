using Sutazai.Data;
using Microsoft.Extensions.Options;
using Sutazai.Server.Configuration;

namespace Sutazai.Server.Knowledge;

/// <summary>
/// Original files under <c>&lt;DataDir&gt;/documents/&lt;id&gt;</c>. The path comes from the document's id only: no name
/// or path a user sent ever reaches the file system.
/// </summary>
public sealed class DocumentStorage(IOptions<SutazaiOptions> app)
{
    public string Root => Path.Combine(app.Value.DataPath, "documents");

    public string PathOf(Guid id) => Path.Combine(Root, id.ToString("N"));

    public async Task SaveAsync(Guid id, Stream content, CancellationToken ct)
    {
        PrivateFiles.CreateDirectory(Root);
        var temp = PathOf(id) + ".tmp";
        await using (var file = new FileStream(temp, PrivateFiles.CreateOptions(FileMode.Create)))
        {
            await content.CopyToAsync(file, ct);
        }
        File.Move(temp, PathOf(id), overwrite: true);
    }

    public Stream Open(Guid id) => File.OpenRead(PathOf(id));

    public void Delete(Guid id)
    {
        if (File.Exists(PathOf(id))) File.Delete(PathOf(id));
    }
}

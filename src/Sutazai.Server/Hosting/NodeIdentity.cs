using Microsoft.Extensions.Options;
using Sutazai.Data;
using Sutazai.Server.Configuration;

namespace Sutazai.Server.Hosting;

/// <summary>
/// This node's lasting name: made once and kept in <c>&lt;DataDir&gt;/node-id</c>, so a restarted process knows which
/// work in the shared database was its own (one process per data dir: <c>DataDirGuard</c>). Every node of a cluster
/// has its own data dir, hence its own id.
/// </summary>
public sealed class NodeIdentity(IOptions<SutazaiOptions> app)
{
    private readonly Lazy<string> _id = new(() => ReadOrCreate(Path.Combine(app.Value.DataPath, "node-id")));

    public string Id => _id.Value;

    private static string ReadOrCreate(string path)
    {
        if (File.Exists(path) && File.ReadAllText(path).Trim() is { Length: > 0 and <= 64 } existing) return existing;
        PrivateFiles.CreateDirectory(Path.GetDirectoryName(path)!);
        var id = Guid.NewGuid().ToString("N");
        var temp = path + ".tmp";
        File.WriteAllText(temp, id);
        File.Move(temp, path, overwrite: true);
        return id;
    }
}

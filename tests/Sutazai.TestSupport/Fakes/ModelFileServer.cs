using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Inference.Gguf;

namespace Sutazai.Server.Tests.Inference;

/// <summary>A tiny file server on a real loopback port, standing in for Hugging Face or any https model host.</summary>
public sealed class ModelFileServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ModelFileServer(WebApplication app, string root)
    {
        _app = app;
        Root = root;
    }

    public string Root { get; }

    public string BaseUrl => _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

    public int Requests;

    /// <summary>When set, files are sent in 16 KiB pieces with this pause between them (to watch progress).</summary>
    public TimeSpan PieceDelay { get; set; }

    private readonly Dictionary<string, string> _gates = new(StringComparer.Ordinal);

    /// <summary>The Authorization header of each request the stand-in CDN got (null when none was sent).</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string?> CdnAuthorizations { get; } = new();

    /// <summary>The Authorization header of each request for a gated file the hub itself got.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string?> GatedAuthorizations { get; } = new();

    /// <summary>
    /// Gates files under <paramref name="prefix"/> as Hugging Face gates a repository: without <c>Bearer token</c> a 401;
    /// with it a 302 to a signed URL on another host (<c>localhost</c> instead of <c>127.0.0.1</c>, standing in for the
    /// file CDN), which serves the file without any credential.
    /// </summary>
    public void Gate(string prefix, string token) => _gates[prefix] = token;

    public static async Task<ModelFileServer> StartAsync()
    {
        var root = Directory.CreateTempSubdirectory("sutazai-files-").FullName;
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        ModelFileServer? self = null;
        app.MapGet("/{**path}", (string path, HttpContext http) =>
        {
            Interlocked.Increment(ref self!.Requests);
            var authorization = http.Request.Headers.Authorization.Count > 0 ? http.Request.Headers.Authorization.ToString() : null;
            if (path.StartsWith("cdn/", StringComparison.Ordinal))
            {
                self.CdnAuthorizations.Enqueue(authorization);
                if (http.Request.Query["signature"] != "ok") return Results.StatusCode(StatusCodes.Status403Forbidden);
                path = path["cdn/".Length..];
            }
            else if (self._gates.FirstOrDefault(g => path.StartsWith(g.Key, StringComparison.Ordinal)) is { Key: not null } gate)
            {
                self.GatedAuthorizations.Enqueue(authorization);
                if (authorization != "Bearer " + gate.Value) return Results.StatusCode(StatusCodes.Status401Unauthorized);
                var cdn = new UriBuilder(self.BaseUrl) { Host = "localhost", Path = "/cdn/" + path, Query = "signature=ok" };
                return Results.Redirect(cdn.Uri.ToString());
            }
            var file = Path.GetFullPath(Path.Combine(root, path));
            if (!file.StartsWith(root, StringComparison.Ordinal) || !File.Exists(file)) return Results.NotFound();
            var sha = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file)));
            http.Response.Headers["X-Linked-Etag"] = $"\"{sha}\"";
            if (self.PieceDelay > TimeSpan.Zero && !http.Request.Headers.Range.Any()) return Results.Stream(async body =>
            {
                var bytes = await File.ReadAllBytesAsync(file);
                for (var offset = 0; offset < bytes.Length; offset += 16 * 1024)
                {
                    await body.WriteAsync(bytes.AsMemory(offset, Math.Min(16 * 1024, bytes.Length - offset)));
                    await body.FlushAsync();
                    await Task.Delay(self.PieceDelay);
                }
            }, "application/octet-stream");
            return Results.File(file, "application/octet-stream", enableRangeProcessing: true);
        });
        await app.StartAsync();
        self = new ModelFileServer(app, root);
        return self;
    }

    public string Put(string relativePath, byte[]? content = null)
    {
        var path = Path.Combine(Root, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        if (content is null) TinyModels.WriteDeterministic(path, DeterministicModelSpec.Default());
        else File.WriteAllBytes(path, content);
        return path;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync();
        Directory.Delete(Root, recursive: true);
    }
}

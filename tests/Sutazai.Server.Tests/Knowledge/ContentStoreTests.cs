using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Server.Tests.Infrastructure;
using Sutazai.Server.Tests.Knowledge.Extraction;

namespace Sutazai.Server.Tests.Knowledge;

/// <summary>
/// The content store every node reads uploaded originals and finished runs' workspaces from: the data dir on SQLite,
/// the shared database on PostgreSQL (<c>Sutazai:Storage:Content=auto</c>). Bytes come back exactly, across several
/// 1 MiB parts; a replace is whole; a delete leaves nothing.
/// </summary>
public abstract class ContentStoreTests(AppFixture fixture)
{
    private TestApp App => fixture.App;

    private IContentStore Store => App.Services.GetRequiredService<IContentStore>();

    private static async Task<byte[]> ReadAllAsync(Stream stream)
    {
        await using (stream)
        {
            using var copy = new MemoryStream();
            await stream.CopyToAsync(copy, 7_000); // a buffer smaller than a part, and not a divisor of one
            return copy.ToArray();
        }
    }

    [Fact]
    public async Task PutOpenReplaceDelete_RoundTripsTheExactBytes_AcrossParts()
    {
        var key = $"tests/{Guid.NewGuid():N}";
        var big = RandomNumberGenerator.GetBytes(3 * DatabaseContentStore.PartBytes + 12_345);
        await Store.PutAsync(key, new MemoryStream(big), CancellationToken.None);
        Assert.Equal(big, await ReadAllAsync((await Store.OpenAsync(key, CancellationToken.None))!));

        var small = RandomNumberGenerator.GetBytes(10);
        await Store.PutAsync(key, new MemoryStream(small), CancellationToken.None);
        Assert.Equal(small, await ReadAllAsync((await Store.OpenAsync(key, CancellationToken.None))!));

        await Store.PutAsync(key, new MemoryStream([]), CancellationToken.None);
        Assert.Empty(await ReadAllAsync((await Store.OpenAsync(key, CancellationToken.None))!));

        await Store.DeleteAsync(key, CancellationToken.None);
        Assert.Null(await Store.OpenAsync(key, CancellationToken.None));
        if (App.Provider == DbProvider.Postgres)
        {
            Assert.Equal("database", Store.Kind);
            Assert.Equal(0, await App.WithDbAsync(db => db.Set<ContentBlobPart>().CountAsync(p => p.Key == key)));
        }
        else
        {
            Assert.Equal("filesystem", Store.Kind);
        }
    }

    [Fact]
    public async Task ExactPartSizedContent_HasNoEmptyTrailingPart()
    {
        var key = $"tests/{Guid.NewGuid():N}";
        var content = RandomNumberGenerator.GetBytes(2 * DatabaseContentStore.PartBytes);
        await Store.PutAsync(key, new MemoryStream(content), CancellationToken.None);
        Assert.Equal(content, await ReadAllAsync((await Store.OpenAsync(key, CancellationToken.None))!));
        if (App.Provider == DbProvider.Postgres)
            Assert.Equal(2, await App.WithDbAsync(db => db.Set<ContentBlob>().Where(b => b.Key == key).Select(b => b.Parts).SingleAsync()));
    }

    /// <summary>A PDF (its reader needs a seekable stream) uploaded and ingested from the store, and found by search.</summary>
    [Fact]
    public async Task APdfIsIngestedFromTheStore()
    {
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(App.Client());
        using var client = App.Client(tokens.AccessToken);
        var form = new MultipartFormDataContent();
        var part = new ByteArrayContent(Fixtures.Pdf());
        part.Headers.ContentType = new MediaTypeHeaderValue("application/pdf");
        form.Add(part, "file", "deck.pdf");
        var response = await client.PostAsync("/api/v1/documents", form);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.ReadJsonAsync()).GetProperty("documents")[0].GetProperty("id").GetGuid();
        Assert.Equal("indexed", (await Documents.WaitIndexedAsync(client, id)).GetProperty("status").GetString());
        var hits = await (await client.GetAsync("/api/v1/search?q=page+two+text&mode=keyword")).ReadJsonAsync();
        Assert.Equal(id, hits[0].GetProperty("documentId").GetGuid());
        Assert.Equal(Fixtures.Pdf().Length, (await ReadAllAsync((await Store.OpenAsync($"documents/{id:N}", CancellationToken.None))!)).Length);
    }
}

public sealed class SqliteContentStoreTests(SqliteAppFixture fixture) : ContentStoreTests(fixture), IClassFixture<SqliteAppFixture>;

public sealed class PostgresContentStoreTests(PostgresAppFixture fixture) : ContentStoreTests(fixture), IClassFixture<PostgresAppFixture>;

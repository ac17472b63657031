using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Knowledge;

public abstract class DocumentsApiTests(AppFixture fixture)
{
    private TestApp App => fixture.App;

    private async Task<HttpClient> UserAsync()
    {
        using var anon = App.Client();
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        return App.Client(tokens.AccessToken);
    }

    private static MultipartFormDataContent Files(params (string Name, string Content)[] files)
    {
        var form = new MultipartFormDataContent();
        foreach (var (name, content) in files)
        {
            var part = new ByteArrayContent(Encoding.UTF8.GetBytes(content));
            part.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            form.Add(part, "file", name);
        }
        return form;
    }

    private static async Task<List<JsonElement>> UploadAsync(HttpClient client, params (string Name, string Content)[] files)
    {
        var response = await client.PostAsync("/api/v1/documents", Files(files));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.ReadJsonAsync()).GetProperty("documents").EnumerateArray().ToList();
    }

    private const string Llamas = "# Llama care\n\nLlamas are domesticated South American camelids. They eat grass and hay and live in herds.\n\n## Shearing\n\nShear llamas once a year in spring.";
    private const string Taxes = "Quarterly revenue grew five percent while operating costs fell. The board approved the annual budget.";

    [Fact]
    public async Task Upload_IsIngested_AndFoundByHybridVectorAndKeywordSearch()
    {
        using var client = await UserAsync();
        var docs = await UploadAsync(client, ("llamas.md", Llamas), ("finance.txt", Taxes));
        Assert.Equal(2, docs.Count);
        Assert.All(docs, d => Assert.Equal("queued", d.GetProperty("status").GetString()));
        var llamaId = docs[0].GetProperty("id").GetGuid();
        var indexed = await Documents.WaitIndexedAsync(client, llamaId);
        Assert.Equal("indexed", indexed.GetProperty("status").GetString());
        Assert.True(indexed.GetProperty("chunkCount").GetInt32() >= 1);
        Assert.Equal(indexed.GetProperty("chunkCount").GetInt32(), indexed.GetProperty("chunksEmbedded").GetInt32());
        await Documents.WaitIndexedAsync(client, docs[1].GetProperty("id").GetGuid());

        foreach (var mode in new[] { "hybrid", "vector", "keyword" })
        {
            var hits = await (await client.GetAsync($"/api/v1/search?q=how+often+should+I+shear+my+llamas&mode={mode}&k=5")).ReadJsonAsync();
            Assert.True(hits.GetArrayLength() >= 1, mode);
            Assert.Equal(llamaId, hits[0].GetProperty("documentId").GetGuid());
            Assert.Contains("llama", hits[0].GetProperty("text").GetString(), StringComparison.OrdinalIgnoreCase);
        }
        var finance = await (await client.GetAsync("/api/v1/search?q=company+budget+and+revenue&mode=vector&k=1")).ReadJsonAsync();
        Assert.Equal(docs[1].GetProperty("id").GetGuid(), finance[0].GetProperty("documentId").GetGuid());
        var headed = await (await client.GetAsync("/api/v1/search?q=shear+spring&mode=keyword&k=1")).ReadJsonAsync();
        Assert.Contains("Shearing", headed[0].GetProperty("heading").GetString());
    }

    [Fact]
    public async Task OtherUsersDocuments_AreNeverFound_OrReadable()
    {
        using var alice = await UserAsync();
        using var bob = await UserAsync();
        var secret = (await UploadAsync(alice, ("secret.txt", "The launch code for project Nightingale is hidden in the greenhouse.")))[0].GetProperty("id").GetGuid();
        await Documents.WaitIndexedAsync(alice, secret);

        Assert.Equal(HttpStatusCode.NotFound, (await bob.GetAsync($"/api/v1/documents/{secret}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bob.DeleteAsync($"/api/v1/documents/{secret}")).StatusCode);
        foreach (var mode in new[] { "hybrid", "vector", "keyword" })
        {
            var hits = await (await bob.GetAsync($"/api/v1/search?q=Nightingale+launch+code&mode={mode}")).ReadJsonAsync();
            Assert.Equal(0, hits.GetArrayLength());
        }
        Assert.Equal(0, (await (await bob.GetAsync("/api/v1/documents")).ReadJsonAsync()).GetProperty("total").GetInt32());
    }

    [Fact]
    public async Task SharedCollection_IsSearchableByTheNamedUser_Only()
    {
        using var alice = await UserAsync();
        using var bob = await UserAsync();
        using var carol = await UserAsync();
        var bobId = (await (await bob.GetAsync("/api/v1/users/me")).ReadJsonAsync()).GetProperty("id").GetGuid();
        var created = await alice.PostAsJsonAsync("/api/v1/collections", new { name = "Team handbook", sharedWithUserIds = new[] { bobId } });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var collectionId = (await created.ReadJsonAsync()).GetProperty("id").GetGuid();

        var form = Files(("handbook.txt", "Our office opens at nine and the coffee machine is on the third floor."));
        form.Add(new StringContent(collectionId.ToString()), "collectionId");
        var upload = await alice.PostAsync("/api/v1/documents", form);
        var docId = (await upload.ReadJsonAsync()).GetProperty("documents")[0].GetProperty("id").GetGuid();
        await Documents.WaitIndexedAsync(alice, docId);

        var bobHits = await (await bob.GetAsync($"/api/v1/search?q=coffee+machine&collection={collectionId}")).ReadJsonAsync();
        Assert.Equal(docId, bobHits[0].GetProperty("documentId").GetGuid());
        var aliceName = (await (await alice.GetAsync("/api/v1/users/me")).ReadJsonAsync()).GetProperty("username").GetString();
        Assert.Equal(aliceName, bobHits[0].GetProperty("sharedBy").GetString());
        var aliceHits = await (await alice.GetAsync($"/api/v1/search?q=coffee+machine&collection={collectionId}")).ReadJsonAsync();
        Assert.Equal(JsonValueKind.Null, aliceHits[0].GetProperty("sharedBy").ValueKind);
        Assert.Equal(HttpStatusCode.OK, (await bob.GetAsync($"/api/v1/documents/{docId}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bob.DeleteAsync($"/api/v1/documents/{docId}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bob.PatchAsJsonAsync($"/api/v1/collections/{collectionId}", new { name = "mine" })).StatusCode);
        Assert.Equal(0, (await (await carol.GetAsync("/api/v1/search?q=coffee+machine")).ReadJsonAsync()).GetArrayLength());
        Assert.Equal(HttpStatusCode.NotFound, (await carol.GetAsync($"/api/v1/documents/{docId}")).StatusCode);
    }

    [Fact]
    public async Task BadFiles_Get415_OrTooLarge413_AndNothingIsStored()
    {
        using var client = await UserAsync();
        var fakePdf = await client.PostAsync("/api/v1/documents", Files(("report.pdf", "<html><body>not a pdf</body></html>")));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, fakePdf.StatusCode);
        Assert.Contains("report.pdf", (await fakePdf.ReadJsonAsync()).GetProperty("detail").GetString());
        var exe = await client.PostAsync("/api/v1/documents", Files(("tool.exe", "MZ\u0090\u0000binary")));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, exe.StatusCode);
        var none = await client.PostAsync("/api/v1/documents", new MultipartFormDataContent { { new StringContent("x"), "other" } });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, none.StatusCode);
        Assert.Equal(0, (await (await client.GetAsync("/api/v1/documents")).ReadJsonAsync()).GetProperty("total").GetInt32());
    }

    [Fact]
    public async Task DuplicateContent_ReturnsTheExistingDocument()
    {
        using var client = await UserAsync();
        var first = (await UploadAsync(client, ("a.txt", "Exactly the same words in both files.")))[0];
        var second = (await UploadAsync(client, ("b.txt", "Exactly the same words in both files.")))[0];
        Assert.Equal(first.GetProperty("id").GetGuid(), second.GetProperty("duplicateOf").GetGuid());
        Assert.Equal(1, (await (await client.GetAsync("/api/v1/documents")).ReadJsonAsync()).GetProperty("total").GetInt32());
    }

    [Fact]
    public async Task Delete_RemovesChunksVectorsAndFile()
    {
        using var client = await UserAsync();
        var id = (await UploadAsync(client, ("gone.txt", "Ephemeral zebra facts that will be deleted soon.")))[0].GetProperty("id").GetGuid();
        await Documents.WaitIndexedAsync(client, id);
        Assert.Equal(1, (await (await client.GetAsync("/api/v1/search?q=ephemeral+zebra&mode=keyword")).ReadJsonAsync()).GetArrayLength());
        // The original is in the content store: the data dir on SQLite, the shared database on PostgreSQL (auto).
        Assert.True(await StoredOriginalAsync(id));
        Assert.Equal(App.Provider == DbProvider.Sqlite, File.Exists(Path.Combine(App.DataDir, "documents", id.ToString("N"))));
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/api/v1/documents/{id}")).StatusCode);
        Assert.Equal(0, await App.WithDbAsync(db => db.Chunks.CountAsync(c => c.DocumentId == id)));
        Assert.False(await StoredOriginalAsync(id));
        foreach (var mode in new[] { "vector", "keyword" })
            Assert.Equal(0, (await (await client.GetAsync($"/api/v1/search?q=ephemeral+zebra&mode={mode}")).ReadJsonAsync()).GetArrayLength());
    }

    private async Task<bool> StoredOriginalAsync(Guid id) => App.Provider == DbProvider.Sqlite
        ? File.Exists(Path.Combine(App.DataDir, "documents", id.ToString("N")))
        : await App.WithDbAsync(db => db.Set<Sutazai.Data.Entities.ContentBlob>().AnyAsync(b => b.Key == $"documents/{id:N}"))
            && await App.WithDbAsync(db => db.Set<Sutazai.Data.Entities.ContentBlobPart>().AnyAsync(p => p.Key == $"documents/{id:N}"));

    [Fact]
    public async Task StatusStream_EndsWithIndexed()
    {
        using var client = await UserAsync();
        var id = (await UploadAsync(client, ("stream.md", "# Title\n\nSome streamed status words.")))[0].GetProperty("id").GetGuid();
        using var response = await client.SendAsync(Sse.Get($"/api/v1/documents/{id}"), HttpCompletionOption.ResponseHeadersRead);
        var events = await Sse.ReadAllAsync(response);
        Assert.Equal("indexed", events[^1].Event);
        Assert.Equal("indexed", events[^1].Data.GetProperty("status").GetString());
    }

    [Fact]
    public async Task LostVectorIndex_IsRebuiltFromTheDatabase_AtStartUp()
    {
        var dataDir = Directory.CreateTempSubdirectory("sutazai-rebuild-").FullName;
        var app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?> { ["Sutazai:Inference:Ollama:AutoDetect"] = "false" }, dataDir: dataDir);
        using var anon = app.Client();
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        using var client = app.Client(tokens.AccessToken);
        var id = (await UploadAsync(client, ("kept.txt", "Volcanoes erupt molten rock called lava.")))[0].GetProperty("id").GetGuid();
        await Documents.WaitIndexedAsync(client, id);

        await app.DisposeAsync();
        await using var restarted = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?> { ["Sutazai:Inference:Ollama:AutoDetect"] = "false" }, dataDir: dataDir);
        Directory.Delete(Path.Combine(restarted.DataDir, "vectors"), recursive: true);
        using var again = restarted.Client(tokens.AccessToken);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        JsonElement hits;
        do
        {
            var response = await again.GetAsync("/api/v1/search?q=lava+from+volcanoes&mode=vector");
            hits = response.StatusCode == HttpStatusCode.OK ? await response.ReadJsonAsync() : default;
            if (hits.ValueKind == JsonValueKind.Array && hits.GetArrayLength() > 0) break;
            await Task.Delay(200);
        }
        while (DateTime.UtcNow < deadline);
        Assert.Equal(id, hits[0].GetProperty("documentId").GetGuid());
        await restarted.DisposeAsync();
        Directory.Delete(dataDir, recursive: true);
    }

    [Fact]
    public async Task InvalidSearch_Returns422()
    {
        using var client = await UserAsync();
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await client.GetAsync("/api/v1/search?q=")).StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await client.GetAsync("/api/v1/search?q=x&mode=magic")).StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await client.GetAsync("/api/v1/search?q=x&k=1000")).StatusCode);
    }
}

/// <summary>The suite on SQLite (and the SQLite full-text index).</summary>
public sealed class SqliteDocumentsApiTests(SqliteAppFixture fixture) : DocumentsApiTests(fixture), IClassFixture<SqliteAppFixture>;

/// <summary>The suite on PostgreSQL (its full-text search and JSON columns).</summary>
public sealed class PostgresDocumentsApiTests(PostgresAppFixture fixture) : DocumentsApiTests(fixture), IClassFixture<PostgresAppFixture>;

/// <summary>The same suite with vectors in pgvector (PGlite), as a scaled-out deployment runs it.</summary>
[Collection(PgVectorCollection.Name)]
public sealed class PgVectorDocumentsApiTests(PgVectorAppFixture fixture) : DocumentsApiTests(fixture), IClassFixture<PgVectorAppFixture>;

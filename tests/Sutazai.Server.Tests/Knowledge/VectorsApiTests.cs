using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Knowledge;

/// <summary>The raw vector API on hand-made 3-d vectors whose cosine similarities to (1, 0, 0) are known exactly.</summary>
public abstract class VectorsApiTests(AppFixture fixture)
{
    private TestApp App => fixture.App;

    private async Task<HttpClient> UserAsync()
    {
        using var anon = App.Client();
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        return App.Client(tokens.AccessToken);
    }

    private static async Task<JsonElement> SearchAsync(HttpClient client, string collection, object body, HttpStatusCode expected = HttpStatusCode.OK)
    {
        var response = await client.PostAsJsonAsync($"/api/v1/vectors/{collection}/search", body);
        Assert.Equal(expected, response.StatusCode);
        return await response.ReadJsonAsync();
    }

    private static List<(string Id, double Score)> Hits(JsonElement body) =>
        body.GetProperty("results").EnumerateArray().Select(r => (r.GetProperty("id").GetString()!, r.GetProperty("score").GetDouble())).ToList();

    private static void AssertHits(JsonElement body, params (string Id, double Score)[] expected)
    {
        var hits = Hits(body);
        Assert.Equal(expected.Select(e => e.Id), hits.Select(h => h.Id));
        for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i].Score, hits[i].Score, 4);
    }

    private static async Task SeedAsync(HttpClient client, string collection)
    {
        var response = await client.PostAsJsonAsync($"/api/v1/vectors/{collection}", new
        {
            points = new object[]
            {
                new { id = "up", vector = new[] { 0f, 1, 0 }, metadata = new { color = "red", n = 1 } },
                new { id = "near", vector = new[] { 0.8f, 0.6f, 0 }, metadata = new { color = "blue", n = 2 } },
                new { id = "same", vector = new[] { 3f, 0, 0 }, metadata = new { color = "red", n = 3 } },
                new { id = "mid", vector = new[] { 0.6f, 0.8f, 0 }, metadata = new { color = "red", n = 2.0 } },
                new { id = "back", vector = new[] { -1f, 0, 0 }, metadata = new { color = "blue", n = 5 } },
            },
        });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.ReadJsonAsync();
        Assert.Equal((collection, 3, 5), (body.GetProperty("collection").GetString(), body.GetProperty("dimensions").GetInt32(), body.GetProperty("upserted").GetInt32()));
    }

    [Fact]
    public async Task Search_ReturnsTheExactNearestNeighbours_WithCosineScoresAndMetadata()
    {
        using var client = await UserAsync();
        await SeedAsync(client, "points");

        var top3 = await SearchAsync(client, "points", new { vector = new[] { 1f, 0, 0 }, k = 3 });
        AssertHits(top3, ("same", 1), ("near", 0.8), ("mid", 0.6));
        var first = top3.GetProperty("results")[0].GetProperty("metadata");
        Assert.Equal(("red", 3), (first.GetProperty("color").GetString(), first.GetProperty("n").GetInt32()));

        AssertHits(await SearchAsync(client, "points", new { vector = new[] { 1f, 0, 0 }, k = 10 }),
            ("same", 1), ("near", 0.8), ("mid", 0.6), ("up", 0), ("back", -1));
        Assert.Equal(5, Hits(await SearchAsync(client, "points", new { vector = new[] { 1f, 0, 0 } })).Count);
    }

    [Fact]
    public async Task Filter_IsAppliedBeforeRanking_ExactMatchOnMetadata()
    {
        using var client = await UserAsync();
        await SeedAsync(client, "filtered");

        AssertHits(await SearchAsync(client, "filtered", new { vector = new[] { 1f, 0, 0 }, k = 2, filter = new { color = "red" } }),
            ("same", 1), ("mid", 0.6));
        // Numbers match by value: 2 and 2.0 are equal.
        AssertHits(await SearchAsync(client, "filtered", new { vector = new[] { 1f, 0, 0 }, k = 5, filter = new { color = "red", n = 2 } }), ("mid", 0.6));
        AssertHits(await SearchAsync(client, "filtered", new { vector = new[] { 1f, 0, 0 }, k = 5, filter = new { color = "blue" } }), ("near", 0.8), ("back", -1));
        Assert.Empty(Hits(await SearchAsync(client, "filtered", new { vector = new[] { 1f, 0, 0 }, k = 5, filter = new { color = "green" } })));
        Assert.Empty(Hits(await SearchAsync(client, "filtered", new { vector = new[] { 1f, 0, 0 }, k = 5, filter = new { n = "2" } })));

        var bad = await SearchAsync(client, "filtered", new { vector = new[] { 1f, 0, 0 }, filter = new { color = new[] { "red" } } }, HttpStatusCode.UnprocessableEntity);
        Assert.True(bad.GetProperty("errors").TryGetProperty("filter", out _));
    }

    [Fact]
    public async Task Upsert_SameId_ReplacesVectorAndMetadata_AndListShowsDimensionsAndCount()
    {
        using var client = await UserAsync();
        await SeedAsync(client, "replace");
        var single = await client.PostAsJsonAsync("/api/v1/vectors/replace", new { id = "up", vector = new[] { 1f, 0, 0 }, metadata = new { color = "green" } });
        Assert.Equal(HttpStatusCode.OK, single.StatusCode);
        var numeric = await client.PostAsJsonAsync("/api/v1/vectors/other", new { id = 42, vector = new[] { 1f, 2, 3, 4 } });
        Assert.Equal(HttpStatusCode.OK, numeric.StatusCode);

        var hits = await SearchAsync(client, "replace", new { vector = new[] { 1f, 0, 0 }, k = 2, filter = new { color = "green" } });
        AssertHits(hits, ("up", 1));
        AssertHits(await SearchAsync(client, "replace", new { vector = new[] { 0f, 1, 0 }, k = 1 }), ("mid", 0.8));
        AssertHits(await SearchAsync(client, "other", new { vector = new[] { 1f, 2, 3, 4 }, k = 1 }), ("42", 1));

        var list = await client.GetFromJsonAsync<JsonElement>("/api/v1/vectors");
        var collections = list.GetProperty("collections").EnumerateArray()
            .Select(c => (c.GetProperty("name").GetString(), c.GetProperty("dimensions").GetInt32(), c.GetProperty("count").GetInt32())).ToList();
        Assert.Equal([("other", 4, 1), ("replace", 3, 5)], collections);
    }

    [Fact]
    public async Task Delete_RemovesTheVector_FromSearchAndStore()
    {
        using var client = await UserAsync();
        await SeedAsync(client, "deleting");

        var deleted = await client.DeleteAsync("/api/v1/vectors/deleting/same");
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        AssertHits(await SearchAsync(client, "deleting", new { vector = new[] { 1f, 0, 0 }, k = 2 }), ("near", 0.8), ("mid", 0.6));
        Assert.Equal(HttpStatusCode.NotFound, (await client.DeleteAsync("/api/v1/vectors/deleting/same")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.DeleteAsync("/api/v1/vectors/nothing-here/same")).StatusCode);
        var stored = await App.WithDbAsync(db => (from p in db.VectorPoints
                                                   join c in db.VectorCollections on p.CollectionId equals c.Id
                                                   where c.Name == "deleting"
                                                   select p.PointId).OrderBy(id => id).ToListAsync());
        Assert.Equal(["back", "mid", "near", "up"], stored);
    }

    [Fact]
    public async Task OtherUsers_SameCollectionName_IsADifferentCollection_AndNeverVisible()
    {
        using var alice = await UserAsync();
        using var bob = await UserAsync();
        await SeedAsync(alice, "shared-name");

        var missing = await SearchAsync(bob, "shared-name", new { vector = new[] { 1f, 0, 0 } }, HttpStatusCode.NotFound);
        Assert.Equal(404, missing.GetProperty("status").GetInt32());
        Assert.Equal(HttpStatusCode.NotFound, (await bob.DeleteAsync("/api/v1/vectors/shared-name/same")).StatusCode);
        Assert.Empty((await bob.GetFromJsonAsync<JsonElement>("/api/v1/vectors")).GetProperty("collections").EnumerateArray());

        // Bob's own collection of that name may even have another dimension count.
        var own = await bob.PostAsJsonAsync("/api/v1/vectors/shared-name", new { id = "same", vector = new[] { 0f, 0, 0, 1 } });
        Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        AssertHits(await SearchAsync(bob, "shared-name", new { vector = new[] { 0f, 0, 0, 1 }, k = 10 }), ("same", 1));
        AssertHits(await SearchAsync(alice, "shared-name", new { vector = new[] { 1f, 0, 0 }, k = 1 }), ("same", 1));
        Assert.Equal(HttpStatusCode.NoContent, (await bob.DeleteAsync("/api/v1/vectors/shared-name/same")).StatusCode);
        Assert.Equal(5, Hits(await SearchAsync(alice, "shared-name", new { vector = new[] { 1f, 0, 0 }, k = 10 })).Count);
    }

    [Fact]
    public async Task InvalidVectors_Are422_NamingTheField()
    {
        using var client = await UserAsync();
        await SeedAsync(client, "strict");

        async Task<JsonElement> Rejected(string url, string json)
        {
            var response = await client.PostAsync(url, new StringContent(json, Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
            return (await response.ReadJsonAsync()).GetProperty("errors");
        }

        var mismatch = await Rejected("/api/v1/vectors/strict", """{"id":"x","vector":[1,0,0,0]}""");
        Assert.Contains("3-dimensional", mismatch.GetProperty("vector")[0].GetString(), StringComparison.Ordinal);
        Assert.True((await Rejected("/api/v1/vectors/strict/search", """{"vector":[1,0]}""")).TryGetProperty("vector", out _));
        Assert.True((await Rejected("/api/v1/vectors/strict", """{"id":"x","vector":[]}""")).TryGetProperty("vector", out _));
        Assert.True((await Rejected("/api/v1/vectors/strict", """{"id":"x","vector":[1,1e39,0]}""")).TryGetProperty("vector", out _));
        Assert.True((await Rejected("/api/v1/vectors/strict", """{"id":"x","vector":[1,"NaN",0]}""")).TryGetProperty("vector", out _));
        Assert.True((await Rejected("/api/v1/vectors/strict", """{"vector":[1,0,0]}""")).TryGetProperty("id", out _));
        var batch = await Rejected("/api/v1/vectors/fresh", """{"points":[{"id":"a","vector":[1,0]},{"id":"b","vector":[1,0,0]}]}""");
        Assert.True(batch.TryGetProperty("points[1].vector", out _));
        Assert.True((await Rejected("/api/v1/vectors/strict/search", """{"vector":[1,0,0],"k":0}""")).TryGetProperty("k", out _));
        Assert.True((await Rejected("/api/v1/vectors/strict/search", """{"vector":[1,0,0],"k":1001}""")).TryGetProperty("k", out _));
        Assert.True((await Rejected("/api/v1/vectors/bad%20name", """{"id":"x","vector":[1,0,0]}""")).TryGetProperty("collection", out _));

        // Nothing of the rejected requests was stored.
        Assert.Equal(5, Hits(await SearchAsync(client, "strict", new { vector = new[] { 1f, 0, 0 }, k = 100 })).Count);
        var collections = await App.WithDbAsync(db => db.VectorCollections.Where(c => c.Name == "fresh").CountAsync());
        Assert.Equal(0, collections);
    }

    [Fact]
    public async Task MalformedJson_Is400()
    {
        using var client = await UserAsync();
        var response = await client.PostAsync("/api/v1/vectors/broken", new StringContent("""{"id":"x","vector":[1,0""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(400, (await response.ReadJsonAsync()).GetProperty("status").GetInt32());
    }

    [Fact]
    public async Task Unauthenticated_Is401()
    {
        using var anon = App.Client();
        Assert.Equal(HttpStatusCode.Unauthorized, (await anon.GetAsync("/api/v1/vectors")).StatusCode);
    }
}

/// <summary>The suite on SQLite.</summary>
public sealed class SqliteVectorsApiTests(SqliteAppFixture fixture) : VectorsApiTests(fixture), IClassFixture<SqliteAppFixture>;

/// <summary>The suite on PostgreSQL.</summary>
public sealed class PostgresVectorsApiTests(PostgresAppFixture fixture) : VectorsApiTests(fixture), IClassFixture<PostgresAppFixture>;

/// <summary>The same suite with vectors in pgvector (PGlite), as a scaled-out deployment runs it.</summary>
[Collection(PgVectorCollection.Name)]
public sealed class PgVectorVectorsApiTests(PgVectorAppFixture fixture) : VectorsApiTests(fixture), IClassFixture<PgVectorAppFixture>;

public sealed class VectorsApiLimitTests
{
    [Fact]
    public async Task OversizedBody_Is413_AndNothingIsStored()
    {
        await using var app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?> { ["Sutazai:Http:MaxRequestBodyBytes"] = "4096" });
        using var anon = app.Client();
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        using var client = app.Client(tokens.AccessToken);

        var big = JsonSerializer.Serialize(new { id = "big", vector = Enumerable.Range(0, 2000).Select(i => i / 2000f).ToArray() });
        Assert.True(Encoding.UTF8.GetByteCount(big) > 4096);
        var response = await client.PostAsync("/api/v1/vectors/large", new StringContent(big, Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal(413, (await response.ReadJsonAsync()).GetProperty("status").GetInt32());
        Assert.Equal(0, await app.WithDbAsync(db => db.VectorPoints.CountAsync()));
    }

    [Fact]
    public async Task UsearchIndex_DeletedOnDisk_IsRebuiltFromTheDatabase()
    {
        var dataDir = Directory.CreateTempSubdirectory("sutazai-rawvec-").FullName;
        try
        {
            Tokens tokens;
            await using (var first = TestApp.Create(DbProvider.Sqlite, dataDir: dataDir))
            {
                using var anon = first.Client();
                (_, tokens) = await Accounts.RegisterAndLoginAsync(anon);
                using var client = first.Client(tokens.AccessToken);
                var response = await client.PostAsJsonAsync("/api/v1/vectors/durable", new
                {
                    points = new object[] { new { id = "a", vector = new[] { 1f, 0 } }, new { id = "b", vector = new[] { 0.6f, 0.8f } } },
                });
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }

            var indexFiles = Directory.GetFiles(Path.Combine(dataDir, "raw-vectors"), "*.usearch", SearchOption.AllDirectories);
            Assert.Single(indexFiles);
            File.Delete(indexFiles[0]);

            await using var second = TestApp.Create(DbProvider.Sqlite, dataDir: dataDir);
            using var again = second.Client(tokens.AccessToken);
            var search = await again.PostAsJsonAsync("/api/v1/vectors/durable/search", new { vector = new[] { 0f, 1f }, k = 2 });
            Assert.Equal(HttpStatusCode.OK, search.StatusCode);
            var ids = (await search.ReadJsonAsync()).GetProperty("results").EnumerateArray().Select(r => r.GetProperty("id").GetString()).ToList();
            Assert.Equal(["b", "a"], ids);
        }
        finally
        {
            Directory.Delete(dataDir, recursive: true);
        }
    }
}

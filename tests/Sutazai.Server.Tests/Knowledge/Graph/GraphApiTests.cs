using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Data;
using Sutazai.Server.Graph;
using Sutazai.Server.Knowledge;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Knowledge.Graph;

public abstract class GraphApiTests(AppFixture fixture)
{
    private TestApp App => fixture.App;

    private const string Team =
        "Ada Lovelace, chief engineer of Analytical Engines Ltd, met Charles Babbage in London. Charles Babbage founded Difference Works Inc. " +
        "Write to ada@engines.example for details. Grace Hopper is a computer scientist.";

    private const string Letters = "Charles Babbage corresponded with Mary Somerville about mathematics.";

    private async Task<(HttpClient Client, Guid Id)> UserAsync()
    {
        using var anon = App.Client();
        var (user, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        return (App.Client(tokens.AccessToken), user.Id);
    }


    private static async Task<Dictionary<string, JsonElement>> EntitiesAsync(HttpClient client, string query = "")
    {
        var response = await client.GetAsync("/api/v1/graph/entities?limit=200" + query);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.ReadJsonAsync()).EnumerateArray().ToDictionary(e => $"{e.GetProperty("type").GetString()}:{e.GetProperty("name").GetString()}");
    }

    private static string Names(JsonElement nodes) => string.Join(" | ", nodes.EnumerateArray().Select(n => n.GetProperty("name").GetString()));

    [Fact]
    public async Task IngestedCorpus_BuildsExactEntities_Neighbors_AndShortestPaths()
    {
        var (client, _) = await UserAsync();
        await Documents.UploadIndexedAsync(client, "team.txt", Team);
        await Documents.UploadIndexedAsync(client, "letters.txt", Letters);

        var entities = await EntitiesAsync(client);
        Assert.Equal(new[]
        {
            "concept:computer scientist", "email:ada@engines.example", "name:Ada Lovelace", "name:Charles Babbage", "name:Grace Hopper",
            "name:Mary Somerville", "organization:Analytical Engines Ltd", "organization:Difference Works Inc",
        }, entities.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(3, entities["name:Charles Babbage"].GetProperty("mentionCount").GetInt32());
        Assert.Equal("name:Charles Babbage", (await EntitiesAsync(client)).First().Key);
        Assert.Equal(new[] { "organization:Analytical Engines Ltd", "organization:Difference Works Inc" }, (await EntitiesAsync(client, "&type=organization")).Keys.Order(StringComparer.Ordinal));
        Assert.Equal(new[] { "name:Charles Babbage" }, (await EntitiesAsync(client, "&q=BABBAGE")).Keys);

        var ada = entities["name:Ada Lovelace"].GetProperty("id").GetGuid();
        var babbage = entities["name:Charles Babbage"].GetProperty("id").GetGuid();
        var somerville = entities["name:Mary Somerville"].GetProperty("id").GetGuid();
        var engines = entities["organization:Analytical Engines Ltd"].GetProperty("id").GetGuid();

        var detail = await (await client.GetAsync($"/api/v1/graph/entities/{babbage}")).ReadJsonAsync();
        Assert.Equal("Charles Babbage", detail.GetProperty("name").GetString());
        Assert.Equal(new[] { ("team.txt", 2), ("letters.txt", 1) },
            detail.GetProperty("documents").EnumerateArray().Select(d => (d.GetProperty("title").GetString()!, d.GetProperty("mentions").GetInt32())));
        var founded = Assert.Single(detail.GetProperty("edges").EnumerateArray(), e => e.GetProperty("relation").GetString() == "founded");
        Assert.Equal(babbage, founded.GetProperty("source").GetGuid());
        Assert.Equal(entities["organization:Difference Works Inc"].GetProperty("id").GetGuid(), founded.GetProperty("target").GetGuid());
        Assert.Equal("Ada Lovelace | Analytical Engines Ltd | Difference Works Inc | Mary Somerville", Names(detail.GetProperty("neighbors")));

        var one = await (await client.GetAsync($"/api/v1/graph/entities/{ada}/neighbors?depth=1")).ReadJsonAsync();
        Assert.Equal(new[] { ("Analytical Engines Ltd", 1), ("Charles Babbage", 1) },
            one.GetProperty("nodes").EnumerateArray().Select(n => (n.GetProperty("name").GetString()!, n.GetProperty("depth").GetInt32())).OrderBy(n => n.Item1, StringComparer.Ordinal));
        Assert.Equal(new[] { "chief_engineer_of", "co_occurs", "co_occurs" }, one.GetProperty("edges").EnumerateArray().Select(e => e.GetProperty("relation").GetString()).Order(StringComparer.Ordinal));
        var two = await (await client.GetAsync($"/api/v1/graph/entities/{ada}/neighbors?depth=2")).ReadJsonAsync();
        Assert.Equal(new[] { ("Analytical Engines Ltd", 1), ("Charles Babbage", 1), ("Difference Works Inc", 2), ("Mary Somerville", 2) },
            two.GetProperty("nodes").EnumerateArray().Select(n => (n.GetProperty("name").GetString()!, n.GetProperty("depth").GetInt32())).OrderBy(n => n.Item1, StringComparer.Ordinal));

        var path = await client.GetAsync($"/api/v1/graph/path?from={ada}&to={somerville}");
        Assert.Equal(HttpStatusCode.OK, path.StatusCode);
        var body = await path.ReadJsonAsync();
        Assert.Equal(2, body.GetProperty("length").GetInt32());
        Assert.Equal("Ada Lovelace | Charles Babbage | Mary Somerville", Names(body.GetProperty("nodes")));
        Assert.Equal(new[] { "co_occurs", "co_occurs" }, body.GetProperty("edges").EnumerateArray().Select(e => e.GetProperty("relation").GetString()));
        var byName = await (await client.GetAsync("/api/v1/graph/path?from=mary+somerville&to=Analytical+Engines+Ltd")).ReadJsonAsync();
        Assert.Equal("Mary Somerville | Charles Babbage | Analytical Engines Ltd", Names(byName.GetProperty("nodes")));
        var direct = await (await client.GetAsync($"/api/v1/graph/path?from={ada}&to={engines}")).ReadJsonAsync();
        Assert.Equal("chief_engineer_of", Assert.Single(direct.GetProperty("edges").EnumerateArray()).GetProperty("relation").GetString());

        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/api/v1/graph/path?from={ada}&to=Grace+Hopper")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/api/v1/graph/path?from={ada}&to={somerville}&maxDepth=1")).StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await client.GetAsync($"/api/v1/graph/entities/{ada}/neighbors?depth=4")).StatusCode);
        var invalid = await client.GetAsync("/api/v1/graph/path?from=&to=x&maxDepth=9");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, invalid.StatusCode);
        var errors = (await invalid.ReadJsonAsync()).GetProperty("errors");
        Assert.True(errors.TryGetProperty("from", out _) && errors.TryGetProperty("maxDepth", out _));
        client.Dispose();
    }

    [Fact]
    public async Task OtherUsers_SeeNoneOfTheGraph_UnlessACollectionIsShared()
    {
        var (alice, _) = await UserAsync();
        var (bob, bobId) = await UserAsync();
        var (carol, _) = await UserAsync();
        await Documents.UploadIndexedAsync(alice, "team.txt", Team);
        var collection = await (await alice.PostAsJsonAsync("/api/v1/collections", new { name = "Letters", sharedWithUserIds = new[] { bobId } })).ReadJsonAsync();
        await Documents.UploadIndexedAsync(alice, "letters.txt", Letters, collection.GetProperty("id").GetGuid());
        var ada = (await EntitiesAsync(alice))["name:Ada Lovelace"].GetProperty("id").GetGuid();

        Assert.Empty(await EntitiesAsync(carol));
        Assert.Equal(HttpStatusCode.NotFound, (await carol.GetAsync($"/api/v1/graph/entities/{ada}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await carol.GetAsync($"/api/v1/graph/entities/{ada}/neighbors?depth=2")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await carol.GetAsync($"/api/v1/graph/path?from={ada}&to=Charles+Babbage")).StatusCode);

        // Bob reads only the shared letters: Babbage with that document's single mention and its one edge.
        var bobs = await EntitiesAsync(bob);
        Assert.Equal(new[] { "name:Charles Babbage", "name:Mary Somerville" }, bobs.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(1, bobs["name:Charles Babbage"].GetProperty("mentionCount").GetInt32());
        Assert.Equal(HttpStatusCode.NotFound, (await bob.GetAsync($"/api/v1/graph/entities/{ada}")).StatusCode);
        var hood = await (await bob.GetAsync($"/api/v1/graph/entities/{bobs["name:Charles Babbage"].GetProperty("id").GetGuid()}/neighbors?depth=3")).ReadJsonAsync();
        Assert.Equal("Mary Somerville", Names(hood.GetProperty("nodes")));
        Assert.Equal(HttpStatusCode.NotFound, (await bob.GetAsync("/api/v1/graph/path?from=Mary+Somerville&to=Ada+Lovelace")).StatusCode);
        foreach (var c in new[] { alice, bob, carol }) c.Dispose();
    }

    [Fact]
    public async Task DeletingDocuments_RemovesTheirMentions_AndOrphanedEntitiesAndEdges()
    {
        var (client, userId) = await UserAsync();
        var team = await Documents.UploadIndexedAsync(client, "team.txt", Team);
        var letters = await Documents.UploadIndexedAsync(client, "letters.txt", Letters);
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/api/v1/documents/{letters}")).StatusCode);

        var entities = await EntitiesAsync(client);
        Assert.False(entities.ContainsKey("name:Mary Somerville"));
        Assert.Equal(7, entities.Count);
        Assert.Equal(2, entities["name:Charles Babbage"].GetProperty("mentionCount").GetInt32());
        Assert.Equal(2, await App.WithDbAsync(db => db.GraphEntities.Where(e => e.OwnerId == userId && e.NormalizedName == "charles babbage").Select(e => e.MentionCount).SingleAsync()));
        Assert.Equal(0, await App.WithDbAsync(db => db.GraphEdges.CountAsync(e => e.DocumentId == letters)));

        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/api/v1/documents/{team}")).StatusCode);
        Assert.Empty(await EntitiesAsync(client));
        Assert.Equal(0, await App.WithDbAsync(db => db.GraphEntities.CountAsync(e => e.OwnerId == userId)));
        Assert.Equal(0, await App.WithDbAsync(db => db.GraphEdges.CountAsync(e => e.OwnerId == userId)));
        Assert.Equal(0, await App.WithDbAsync(db => db.GraphMentions.CountAsync(m => m.DocumentId == team || m.DocumentId == letters)));
        client.Dispose();
    }

    [Fact]
    public async Task Facts_AboutEntitiesNamedInAQuestion_AreStatedHeaviestFirst()
    {
        var (client, userId) = await UserAsync();
        await Documents.UploadIndexedAsync(client, "team.txt", Team);
        await using var scope = App.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var graph = scope.ServiceProvider.GetRequiredService<GraphQueries>();
        var knowledge = await KnowledgeAccess.ScopeAsync(db, userId, CancellationToken.None);

        var facts = await graph.FactsAsync(knowledge, "what does ada lovelace do?", 8, CancellationToken.None);
        Assert.Equal("Ada Lovelace (name) —chief engineer of→ Analytical Engines Ltd (organization).", facts[0]);
        Assert.Equal(new[]
        {
            "Ada Lovelace (name) is mentioned together with Analytical Engines Ltd (organization) in 1 sentence(s).",
            "Ada Lovelace (name) is mentioned together with Charles Babbage (name) in 1 sentence(s).",
        }, facts.Skip(1).Order(StringComparer.Ordinal));
        Assert.Single(await graph.FactsAsync(knowledge, "Who is Ada Lovelace?", 1, CancellationToken.None));
        Assert.Empty(await graph.FactsAsync(knowledge, "Tell me about llamas", 8, CancellationToken.None));
        var stranger = await KnowledgeAccess.ScopeAsync(db, Guid.NewGuid(), CancellationToken.None);
        Assert.Empty(await graph.FactsAsync(stranger, "what does ada lovelace do?", 8, CancellationToken.None));
        client.Dispose();
    }
}

/// <summary>The suite on SQLite (and the SQLite full-text index).</summary>
public sealed class SqliteGraphApiTests(SqliteAppFixture fixture) : GraphApiTests(fixture), IClassFixture<SqliteAppFixture>;

/// <summary>The suite on PostgreSQL (its full-text search and JSON columns).</summary>
public sealed class PostgresGraphApiTests(PostgresAppFixture fixture) : GraphApiTests(fixture), IClassFixture<PostgresAppFixture>;

using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Sutazai.Agents.Tools;
using Sutazai.Server.Tests.Infrastructure;
using static Sutazai.Server.Tests.Agents.Tools.ToolHarness;

namespace Sutazai.Server.Tests.Agents.Tools;

public sealed class KnowledgeToolTests(SqliteAppFixture fixture) : IClassFixture<SqliteAppFixture>
{
    private async Task<(Guid Id, HttpClient Client)> UserAsync()
    {
        using var anon = fixture.App.Client();
        var (user, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        return (user.Id, fixture.App.Client(tokens.AccessToken));
    }


    private AgentTool Search(Guid userId) => Tool(new KnowledgeToolProvider(), Context("/tmp", fixture.App.Services, userId), "knowledge_search");

    [Fact]
    public async Task Search_FindsTheUsersOwnDocuments_AndNotOthers()
    {
        var (aliceId, alice) = await UserAsync();
        var (bobId, _) = await UserAsync();
        var docId = await Documents.UploadIndexedAsync(alice, "falcons.md", "# Falcons\n\nPeregrine falcons dive at more than three hundred kilometres per hour.");

        var result = await InvokeAsync<KnowledgeSearchResult>(Search(aliceId), new { query = "how fast do peregrine falcons dive" });
        var hit = Assert.Single(result.Results);
        Assert.Equal(docId, hit.DocumentId);
        Assert.Equal("Falcons", hit.Title);
        Assert.Equal("Falcons", hit.Heading);
        Assert.Contains("three hundred kilometres per hour", hit.Text);
        Assert.True(hit.Score > 0);
        Assert.NotEqual(Guid.Empty, hit.ChunkId);

        Assert.Empty((await InvokeAsync<KnowledgeSearchResult>(Search(bobId), new { query = "how fast do peregrine falcons dive" })).Results);
    }

    [Fact]
    public async Task Search_CanBeLimitedToCollections()
    {
        var (userId, client) = await UserAsync();
        var created = await client.PostAsJsonAsync("/api/v1/collections", new { name = "Birds" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var birds = (await created.ReadJsonAsync()).GetProperty("id").GetGuid();
        var inCollection = await Documents.UploadIndexedAsync(client, "owls.txt", "Barn owls hunt mice at night using their hearing.", birds);
        var outside = await Documents.UploadIndexedAsync(client, "owls-loose.txt", "Snowy owls hunt lemmings in the arctic daylight.");

        var all = await InvokeAsync<KnowledgeSearchResult>(Search(userId), new { query = "owls hunt", k = 10 });
        Assert.Equal(new HashSet<Guid> { inCollection, outside }, all.Results.Select(r => r.DocumentId).ToHashSet());
        var limited = await InvokeAsync<KnowledgeSearchResult>(Search(userId), new { query = "owls hunt", k = 10, collectionIds = new[] { birds } });
        Assert.Equal([inCollection], limited.Results.Select(r => r.DocumentId));
        Assert.Single((await InvokeAsync<KnowledgeSearchResult>(Search(userId), new { query = "owls hunt", k = 1 })).Results);
    }

    [Fact]
    public async Task Search_ValidatesItsArguments()
    {
        var (userId, _) = await UserAsync();
        Assert.Equal("Give a query of 1 to 1000 characters.", (await FailsAsync(Search(userId), new { query = " " })).Message);
        Assert.Equal("k must be between 1 and 50.", (await FailsAsync(Search(userId), new { query = "x", k = 51 })).Message);
        Assert.False(Search(userId).SideEffects);
    }
}

using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Agents;
using Sutazai.Agents.Tools;
using Sutazai.Server.Tests.Infrastructure;
using static Sutazai.Server.Tests.Agents.Tools.ToolHarness;

namespace Sutazai.Server.Tests.Agents;

/// <summary>
/// Long-term memory as users and the memory agent reach it: <c>/api/v1/memory</c> (core blocks and archival passages,
/// scoped to their owner) and the agent's memory tools, which write the same store — on SQLite and PostgreSQL.
/// </summary>
public abstract class MemoryTests(AppFixture fixture)
{
    private async Task<(Guid Id, HttpClient Client)> UserAsync()
    {
        using var anon = fixture.App.Client();
        var (user, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        return (user.Id, fixture.App.Client(tokens.AccessToken));
    }

    private static Dictionary<string, string> Blocks(JsonElement memory) =>
        memory.GetProperty("blocks").EnumerateArray().ToDictionary(b => b.GetProperty("label").GetString()!, b => b.GetProperty("value").GetString()!);

    [Fact]
    public async Task Blocks_StartAtTheDefaults_AndASetBlockIsTheOwnersOnly()
    {
        var (_, alice) = await UserAsync();
        var (_, bob) = await UserAsync();
        var fresh = await (await alice.GetAsync("/api/v1/memory")).ReadJsonAsync();
        Assert.Equal(new Dictionary<string, string> { ["persona"] = MemoryStore.DefaultBlocks["persona"], ["human"] = "" }, Blocks(fresh));
        Assert.All(fresh.GetProperty("blocks").EnumerateArray(), b => Assert.Equal(MemoryStore.BlockLimit, b.GetProperty("limit").GetInt32()));
        Assert.Empty(fresh.GetProperty("passages").EnumerateArray());

        var set = await alice.PutAsJsonAsync("/api/v1/memory/blocks/human", new { value = "Name: Ada. Prefers metric units." });
        Assert.Equal(HttpStatusCode.OK, set.StatusCode);
        Assert.Equal("Name: Ada. Prefers metric units.", (await set.ReadJsonAsync()).GetProperty("value").GetString());
        Assert.Equal("Name: Ada. Prefers metric units.", Blocks(await (await alice.GetAsync("/api/v1/memory")).ReadJsonAsync())["human"]);
        // Set again: the one stored row changes, no second row appears.
        Assert.Equal(HttpStatusCode.OK, (await alice.PutAsJsonAsync("/api/v1/memory/blocks/human", new { value = "Name: Ada." })).StatusCode);
        Assert.Equal("Name: Ada.", Blocks(await (await alice.GetAsync("/api/v1/memory")).ReadJsonAsync())["human"]);

        Assert.Equal("", Blocks(await (await bob.GetAsync("/api/v1/memory")).ReadJsonAsync())["human"]);
    }

    [Fact]
    public async Task Blocks_RefuseUnknownLabels_MissingAndOversizedValues()
    {
        var (_, client) = await UserAsync();
        var unknown = await client.PutAsJsonAsync("/api/v1/memory/blocks/secrets", new { value = "x" });
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("No memory block 'secrets'. Blocks: persona, human.", (await unknown.ReadJsonAsync()).GetProperty("detail").GetString());

        var missing = await client.PutAsJsonAsync("/api/v1/memory/blocks/human", new { });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, missing.StatusCode);
        Assert.Equal("value is required.", (await missing.ReadJsonAsync()).GetProperty("errors").GetProperty("value")[0].GetString());

        var big = await client.PutAsJsonAsync("/api/v1/memory/blocks/persona", new { value = new string('p', MemoryStore.BlockLimit + 1) });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, big.StatusCode);
        Assert.Equal($"value must be at most {MemoryStore.BlockLimit} characters.", (await big.ReadJsonAsync()).GetProperty("errors").GetProperty("value")[0].GetString());
        Assert.Equal(MemoryStore.DefaultBlocks["persona"], Blocks(await (await client.GetAsync("/api/v1/memory")).ReadJsonAsync())["persona"]);
    }

    [Fact]
    public async Task Passages_AreFoundByMeaning_ListedNewestFirst_AndDeletedByTheirOwnerOnly()
    {
        var (_, alice) = await UserAsync();
        var (_, bob) = await UserAsync();
        var texts = new[] { "The cat sat on the mat all afternoon.", "Quarterly revenue grew by twelve percent.", "My sister's birthday is on the ninth of May." };
        var ids = new List<Guid>();
        foreach (var text in texts)
        {
            var created = await alice.PostAsJsonAsync("/api/v1/memory/passages", new { text = "  " + text + " " });
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            var body = await created.ReadJsonAsync();
            Assert.Equal(text, body.GetProperty("text").GetString());
            ids.Add(body.GetProperty("id").GetGuid());
            Assert.Equal($"/api/v1/memory/passages/{ids[^1]}", created.Headers.Location?.OriginalString);
        }

        var search = await (await alice.GetAsync("/api/v1/memory/passages?q=" + Uri.EscapeDataString("when is my sister's birthday") + "&k=2")).ReadJsonAsync();
        Assert.Equal(2, search.GetArrayLength());
        Assert.Equal(ids[2], search[0].GetProperty("id").GetGuid());
        Assert.True(search[0].GetProperty("score").GetDouble() > search[1].GetProperty("score").GetDouble());

        var newest = await (await alice.GetAsync("/api/v1/memory/passages?k=10")).ReadJsonAsync();
        Assert.Equal(ids.AsEnumerable().Reverse(), newest.EnumerateArray().Select(p => p.GetProperty("id").GetGuid()));
        Assert.All(newest.EnumerateArray(), p => Assert.Equal(JsonValueKind.Null, p.GetProperty("score").ValueKind));

        Assert.Empty((await (await bob.GetAsync("/api/v1/memory/passages?q=birthday")).ReadJsonAsync()).EnumerateArray());
        Assert.Equal(HttpStatusCode.NotFound, (await bob.DeleteAsync($"/api/v1/memory/passages/{ids[0]}")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await alice.DeleteAsync($"/api/v1/memory/passages/{ids[0]}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await alice.DeleteAsync($"/api/v1/memory/passages/{ids[0]}")).StatusCode);
        Assert.Equal(2, (await (await alice.GetAsync("/api/v1/memory")).ReadJsonAsync()).GetProperty("passages").GetArrayLength());
    }

    [Theory]
    [InlineData("", "text is required.")]
    [InlineData("   ", "text is required.")]
    public async Task Passages_WithoutText_Are422(string text, string error)
    {
        var (_, client) = await UserAsync();
        var response = await client.PostAsJsonAsync("/api/v1/memory/passages", new { text });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Equal(error, (await response.ReadJsonAsync()).GetProperty("errors").GetProperty("text")[0].GetString());
        var tooLong = await client.PostAsJsonAsync("/api/v1/memory/passages", new { text = new string('t', 8001) });
        Assert.Equal("text must be at most 8000 characters.", (await tooLong.ReadJsonAsync()).GetProperty("errors").GetProperty("text")[0].GetString());
        Assert.Empty((await (await client.GetAsync("/api/v1/memory")).ReadJsonAsync()).GetProperty("passages").EnumerateArray());
    }

    [Fact]
    public async Task MemoryTools_EditTheUsersOwnMemory_WhichTheApiShows()
    {
        var (userId, client) = await UserAsync();
        var (otherId, other) = await UserAsync();
        using var scope = fixture.App.Services.CreateScope();
        var context = Context("/tmp", scope.ServiceProvider, userId);
        var provider = new MemoryToolProvider();
        Assert.Equal(["core_memory_append", "core_memory_replace", "archival_memory_insert", "archival_memory_search", "conversation_search"],
            provider.Create(context).Select(t => t.Name));
        Assert.All(provider.Create(context), t => Assert.False(t.SideEffects));

        var appended = await InvokeAsync<JsonElement>(Tool(provider, context, "core_memory_append"), new { label = "human", content = "Likes hiking." });
        Assert.Equal("Likes hiking.", appended.GetProperty("value").GetString());
        await InvokeAsync<JsonElement>(Tool(provider, context, "core_memory_append"), new { label = "human", content = "Lives in Oslo." });
        var replaced = await InvokeAsync<JsonElement>(Tool(provider, context, "core_memory_replace"), new { label = "human", oldContent = "Oslo", newContent = "Bergen" });
        Assert.Equal("Likes hiking.\nLives in Bergen.", replaced.GetProperty("value").GetString());
        Assert.Equal("Likes hiking.\nLives in Bergen.", Blocks(await (await client.GetAsync("/api/v1/memory")).ReadJsonAsync())["human"]);
        Assert.Equal("", Blocks(await (await other.GetAsync("/api/v1/memory")).ReadJsonAsync())["human"]);

        Assert.Equal("No block 'secrets'; use 'persona' or 'human'.", (await FailsAsync(Tool(provider, context, "core_memory_append"), new { label = "secrets", content = "x" })).Message);
        Assert.Equal("The 'human' block does not contain that text.", (await FailsAsync(Tool(provider, context, "core_memory_replace"), new { label = "human", oldContent = "Paris", newContent = "Rome" })).Message);
        Assert.Equal($"The 'human' block would be {MemoryStore.BlockLimit + 30} characters; the limit is {MemoryStore.BlockLimit}.",
            (await FailsAsync(Tool(provider, context, "core_memory_append"), new { label = "human", content = new string('h', MemoryStore.BlockLimit + 30 - "Likes hiking.\nLives in Bergen.\n".Length) })).Message);

        var stored = await InvokeAsync<JsonElement>(Tool(provider, context, "archival_memory_insert"), new { content = "The spare key is under the blue flowerpot." });
        Assert.True(stored.GetProperty("stored").GetBoolean());
        var passageId = stored.GetProperty("id").GetGuid();
        var hits = await InvokeAsync<JsonElement>(Tool(provider, context, "archival_memory_search"), new { query = "where is the spare key", count = 3 });
        Assert.Equal(passageId, hits[0].GetProperty("id").GetGuid());
        Assert.Equal("The spare key is under the blue flowerpot.", hits[0].GetProperty("text").GetString());
        Assert.Equal(passageId, (await (await client.GetAsync("/api/v1/memory")).ReadJsonAsync()).GetProperty("passages")[0].GetProperty("id").GetGuid());

        var otherContext = Context("/tmp", scope.ServiceProvider, otherId);
        Assert.Equal(0, (await InvokeAsync<JsonElement>(Tool(provider, otherContext, "archival_memory_search"), new { query = "where is the spare key", count = 3 })).GetArrayLength());
    }
}

public sealed class SqliteMemoryTests(SqliteAppFixture fixture) : MemoryTests(fixture), IClassFixture<SqliteAppFixture>;

public sealed class PostgresMemoryTests(PostgresAppFixture fixture) : MemoryTests(fixture), IClassFixture<PostgresAppFixture>;

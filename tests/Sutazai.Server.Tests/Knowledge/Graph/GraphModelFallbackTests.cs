using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Knowledge.Graph;

public sealed class GraphModelFallbackTests
{
    [Fact]
    public async Task UseModel_WithAModelThatAnswersProse_FallsBackToTheRules_AndIndexesTheDocument()
    {
        await using var app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?>
        {
            ["Sutazai:Inference:LlamaCpp:ContextSize"] = "4096",
            ["Sutazai:Inference:Ollama:AutoDetect"] = "false",
            ["Sutazai:Inference:DefaultModel"] = ModelAppFixture.ModelId,
            ["Sutazai:Knowledge:Graph:UseModel"] = "true",
        });
        ModelAppFixture.WriteModel(app.DataDir);
        using var anon = app.Client();
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(anon);
        using var client = app.Client(tokens.AccessToken);

        var form = new MultipartFormDataContent();
        var part = new ByteArrayContent(Encoding.UTF8.GetBytes("Ada Lovelace met Charles Babbage in London."));
        part.Headers.ContentType = new MediaTypeHeaderValue("text/plain");
        form.Add(part, "file", "meeting.txt");
        var upload = await client.PostAsync("/api/v1/documents", form);
        Assert.Equal(HttpStatusCode.Accepted, upload.StatusCode);
        var id = (await upload.ReadJsonAsync()).GetProperty("documents")[0].GetProperty("id").GetGuid();

        var document = await Documents.WaitIndexedAsync(client, id);
        Assert.Equal("indexed", document.GetProperty("status").GetString());
        var entities = await (await client.GetAsync("/api/v1/graph/entities")).ReadJsonAsync();
        Assert.Equal(new[] { "Ada Lovelace", "Charles Babbage" }, entities.EnumerateArray().Select(e => e.GetProperty("name").GetString()).Order(StringComparer.Ordinal));
    }
}

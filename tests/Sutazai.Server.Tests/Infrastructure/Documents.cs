using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Sutazai.Server.Tests.Infrastructure;

public static class Documents
{
    /// <summary>Polls a document until ingestion ends (indexed or failed, or 60 s pass) and returns its last state.</summary>
    public static async Task<JsonElement> WaitIndexedAsync(HttpClient client, Guid id)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var doc = await (await client.GetAsync($"/api/v1/documents/{id}")).ReadJsonAsync();
            var status = doc.GetProperty("status").GetString();
            if (status is "indexed" or "failed" || DateTime.UtcNow > deadline) return doc;
            await Task.Delay(100);
        }
    }

    /// <summary>Uploads one text file (optionally into a collection), waits until it is indexed and returns its id.</summary>
    public static async Task<Guid> UploadIndexedAsync(HttpClient client, string name, string content, Guid? collectionId = null)
    {
        var form = new MultipartFormDataContent();
        var part = new ByteArrayContent(Encoding.UTF8.GetBytes(content));
        part.Headers.ContentType = new MediaTypeHeaderValue("text/plain");
        form.Add(part, "file", name);
        if (collectionId is { } c) form.Add(new StringContent(c.ToString()), "collectionId");
        var response = await client.PostAsync("/api/v1/documents", form);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.ReadJsonAsync()).GetProperty("documents")[0].GetProperty("id").GetGuid();
        Assert.Equal("indexed", (await WaitIndexedAsync(client, id)).GetProperty("status").GetString());
        return id;
    }
}

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
}

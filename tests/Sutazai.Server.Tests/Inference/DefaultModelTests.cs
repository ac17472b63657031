using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Server.Hosting;
using Sutazai.Server.Inference;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Inference;

/// <summary>PUT /api/v1/models/default: stored in system_flags, shown in the listing, used before the configured default.</summary>
public sealed class DefaultModelTests
{
    private static JsonElement ModelNamed(JsonElement listing, string id) =>
        listing.GetProperty("models").EnumerateArray().Single(m => m.GetProperty("id").GetString() == id);

    [Fact]
    public async Task ChosenDefault_IsStored_Listed_AndUsedBeforeTheConfiguredOne()
    {
        await using var app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?>
        {
            ["Sutazai:Inference:Ollama:AutoDetect"] = "false",
            ["Sutazai:Inference:LlamaCpp:ContextSize"] = "4096",
            ["Sutazai:Inference:DefaultModel"] = "tiny-a",
        });
        ModelAppFixture.WriteModel(app.DataDir, "tiny-a");
        ModelAppFixture.WriteModel(app.DataDir, "tiny-b");
        using var anon = app.Client();
        var adminUser = await Accounts.RegisterAsync(anon);
        var plainUser = await Accounts.RegisterAsync(anon);
        using var admin = app.Client((await Accounts.LoginAsync(anon, adminUser.Username)).AccessToken);
        using var user = app.Client((await Accounts.LoginAsync(anon, plainUser.Username)).AccessToken);

        var before = await (await admin.GetAsync("/api/v1/models")).ReadJsonAsync();
        Assert.Equal("tiny-a", before.GetProperty("defaultModel").GetString());
        Assert.True(ModelNamed(before, "tiny-a").GetProperty("default").GetBoolean());
        Assert.False(ModelNamed(before, "tiny-b").GetProperty("default").GetBoolean());

        Assert.Equal(HttpStatusCode.Forbidden, (await user.PutAsJsonAsync("/api/v1/models/default", new { model = "tiny-b" })).StatusCode);
        var empty = await admin.PutAsJsonAsync("/api/v1/models/default", new { model = " " });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, empty.StatusCode);
        Assert.True((await empty.ReadJsonAsync()).GetProperty("errors").TryGetProperty("model", out _));
        var unknown = await admin.PutAsJsonAsync("/api/v1/models/default", new { model = "no-such-model" });
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("no-such-model", (await unknown.ReadJsonAsync()).GetProperty("detail").GetString());
        var malformed = await admin.PutAsync("/api/v1/models/default", new StringContent("{\"model\":", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
        Assert.Null(await app.WithDbAsync(db => db.SystemFlags.Where(f => f.Key == SystemSettings.DefaultModelKey).Select(f => f.Value).FirstOrDefaultAsync()));

        var set = await admin.PutAsJsonAsync("/api/v1/models/default", new { model = "tiny-b" });
        Assert.Equal(HttpStatusCode.OK, set.StatusCode);
        var setBody = await set.ReadJsonAsync();
        Assert.Equal("tiny-b", setBody.GetProperty("id").GetString());
        Assert.Equal("llamacpp", setBody.GetProperty("provider").GetString());
        Assert.True(setBody.GetProperty("default").GetBoolean());
        Assert.Equal("llamacpp/tiny-b", await app.WithDbAsync(db => db.SystemFlags.Where(f => f.Key == SystemSettings.DefaultModelKey).Select(f => f.Value).SingleAsync()));

        var after = await (await user.GetAsync("/api/v1/models")).ReadJsonAsync();
        Assert.Equal("tiny-b", after.GetProperty("defaultModel").GetString());
        Assert.True(ModelNamed(after, "tiny-b").GetProperty("default").GetBoolean());
        Assert.False(ModelNamed(after, "tiny-a").GetProperty("default").GetBoolean());

        // A request that names no model runs on the chosen default, not the configured one.
        var generated = await user.PostAsJsonAsync("/api/v1/generate", new { prompt = "Once", options = new { temperature = 0, maxTokens = 2 } });
        Assert.Equal(HttpStatusCode.OK, generated.StatusCode);
        var generatedBody = await generated.ReadJsonAsync();
        Assert.Equal("tiny-b", generatedBody.GetProperty("model").GetString());

        // The monitor's sampler saw those tokens and these requests (through the server's own meters).
        var sampler = app.Services.GetRequiredService<MonitorSampler>();
        var latest = sampler.SampleNow();
        var samples = sampler.Samples();
        Assert.Same(latest, samples[^1]);
        Assert.Contains(samples, s => s.TokensPerSecond > 0);
        Assert.Contains(samples, s => s.RequestsPerSecond > 0);
        Assert.True(latest.WorkingSetBytes > 0 && latest.GcHeapBytes > 0);

        // Choosing again updates the one stored row.
        var again = await admin.PutAsJsonAsync("/api/v1/models/default", new { model = "llamacpp/tiny-a" });
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal("llamacpp/tiny-a", await app.WithDbAsync(db => db.SystemFlags.Where(f => f.Key == SystemSettings.DefaultModelKey).Select(f => f.Value).SingleAsync()));
        Assert.Equal(1, await app.WithDbAsync(db => db.SystemFlags.CountAsync(f => f.Key == SystemSettings.DefaultModelKey)));
    }
}

using Sutazai.Inference.Gguf;

namespace Sutazai.Server.Tests.Infrastructure;

/// <summary>A server with the tiny deterministic GGUF model in its models folder, and an admin signed in.</summary>
public abstract class ModelAppFixtureBase(DbProvider provider) : IAsyncLifetime
{
    public const string ModelId = "tiny-deterministic";

    public TestApp App { get; private set; } = null!;

    public Tokens AdminTokens { get; private set; } = null!;

    public string ModelPath => Path.Combine(App.DataDir, "models", ModelId + ".gguf");

    public static string WriteModel(string dataDir, string id = ModelId)
    {
        var dir = Path.Combine(dataDir, "models");
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, id + ".gguf");
        TinyModels.WriteDeterministic(path, DeterministicModelSpec.Default());
        return path;
    }

    public async Task InitializeAsync()
    {
        App = TestApp.Create(provider, new Dictionary<string, string?>
        {
            ["Sutazai:Inference:LlamaCpp:ContextSize"] = "4096",
            ["Sutazai:Inference:LlamaCpp:ParallelSlots"] = "4",
            ["Sutazai:Inference:LlamaCpp:KeepAlive"] = "-00:00:01",
            ["Sutazai:Inference:Ollama:AutoDetect"] = "false",
            // The batching tests send six generations of one user at once; the per-user limit has its own tests.
            ["Sutazai:RateLimits:ConcurrentGenerationsPerUser"] = "8",
        });
        WriteModel(App.DataDir);
        using var client = App.Client();
        var admin = await Accounts.RegisterAsync(client);
        AdminTokens = await Accounts.LoginAsync(client, admin.Username);
    }

    public async Task DisposeAsync() => await App.DisposeAsync();
}

public sealed class ModelAppFixture() : ModelAppFixtureBase(DbProvider.Sqlite);

public sealed class PostgresModelAppFixture() : ModelAppFixtureBase(DbProvider.Postgres);

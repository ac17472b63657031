using System.Collections.Concurrent;
using System.ComponentModel;
using System.Net;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Sutazai.Inference;
using Sutazai.Agents.Tools;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Agents;

/// <summary>
/// A model provider whose one model follows scripts: the script is chosen by a key contained in the conversation's
/// first user message, and the reply is the script's entry for the number of assistant turns so far — so a resumed
/// run (after an approval or a restart) gets exactly the reply it would have got.
/// </summary>
public sealed class ScriptedModels : IModelProvider
{
    public const string ModelId = "scripted-agent";

    private readonly ConcurrentDictionary<string, Func<IReadOnlyList<ChatMessage>, ChatResponse>[]> _scripts = new();

    public ConcurrentQueue<IReadOnlyList<ChatMessage>> Requests { get; } = new();

    public string Name => "scripted";

    /// <summary>Each turn is a <see cref="ChatResponse"/>, or a function of the messages the model was sent.</summary>
    public void Script(string key, params object[] turns) => _scripts[key] = turns.Select(t => t switch
    {
        ChatResponse response => _ => response,
        Func<IReadOnlyList<ChatMessage>, ChatResponse> reply => reply,
        _ => throw new ArgumentException("A turn is a ChatResponse or a Func<IReadOnlyList<ChatMessage>, ChatResponse>."),
    }).ToArray();

    public static ChatResponse Call(string tool, object arguments, string text = "", string? callId = null) =>
        new(new ChatMessage(ChatRole.Assistant, [
            .. text.Length > 0 ? new AIContent[] { new TextContent(text) } : [],
            new FunctionCallContent(callId ?? "call_" + Guid.NewGuid().ToString("N")[..8], tool,
                JsonSerializer.SerializeToElement(arguments).EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone())),
        ]))
        { Usage = new UsageDetails { InputTokenCount = 10, OutputTokenCount = 5 } };

    public static ChatResponse Answer(string text) =>
        new(new ChatMessage(ChatRole.Assistant, text)) { Usage = new UsageDetails { InputTokenCount = 10, OutputTokenCount = 5 } };

    public Task<IReadOnlyList<ModelInfo>> ListModelsAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ModelInfo>>([new ModelInfo(ModelId, Name, null, 8192, "scripted", null, true)]);

    public IChatClient GetChatClient(string modelId) => new Client(this);

    public IAsyncEnumerable<ChatResponseUpdate> CompleteAsync(string modelId, string prompt, ChatOptions? options, CancellationToken cancellationToken) =>
        throw new InferenceUnavailableException("The scripted model only chats.");

    public Task<ProviderHealth> CheckHealthAsync(CancellationToken cancellationToken) => Task.FromResult(new ProviderHealth(Name, true, "scripted"));

    private sealed class Client(ScriptedModels owner) : IChatClient
    {
        public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
        {
            var list = messages.ToList();
            owner.Requests.Enqueue(list);
            var first = list.FirstOrDefault(m => m.Role == ChatRole.User)?.Text ?? "";
            var script = owner._scripts.Where(s => first.Contains(s.Key, StringComparison.Ordinal)).OrderByDescending(s => s.Key.Length).Select(s => s.Value).FirstOrDefault()
                ?? throw new InvalidOperationException($"No script for: {first}");
            var turn = list.Count(m => m.Role == ChatRole.Assistant);
            if (turn >= script.Length) throw new InvalidOperationException($"The script for '{first}' has {script.Length} turns; turn {turn + 1} was asked for.");
            return Task.FromResult(script[turn](list));
        }

        public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
            [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            var response = await GetResponseAsync(messages, options, cancellationToken);
            foreach (var update in response.ToChatResponseUpdates()) yield return update;
        }

        public object? GetService(Type serviceType, object? serviceKey = null) => null;

        public void Dispose()
        {
        }
    }
}

/// <summary>Test tools: one with a side effect the tests can observe (a marker file; high risk for names starting "danger"), a read-only echo, and a slow one.</summary>
public sealed class TestKitTools : IToolProvider
{
    public ConcurrentQueue<string> Invocations { get; } = new();

    public string Name => "testkit";

    public string Description => "Tools for runtime tests.";

    public (bool Available, string? Reason) Health() => (true, null);

    public IReadOnlyList<AgentTool> Create(ToolContext context) =>
    [
        new(AIFunctionFactory.Create(([Description("marker name")] string name) =>
        {
            Invocations.Enqueue("write_marker:" + name);
            File.AppendAllText(Path.Combine(context.Workspace, name), "written\n");
            return new { written = name };
        }, "write_marker", "Writes a marker file."), true, args => args.TryGetValue("name", out var n) && n?.ToString()?.StartsWith("danger", StringComparison.Ordinal) == true ? ToolRisk.High : ToolRisk.Medium),
        new(AIFunctionFactory.Create((string text) =>
        {
            Invocations.Enqueue("echo:" + text);
            return new { echoed = text };
        }, "echo", "Echoes text."), false, _ => ToolRisk.Low),
        new(AIFunctionFactory.Create(async (int seconds, CancellationToken ct) =>
        {
            Invocations.Enqueue("wait:" + seconds);
            await Task.Delay(TimeSpan.FromSeconds(seconds), ct);
            return new { waited = seconds };
        }, "wait", "Waits."), false, _ => ToolRisk.Low),
    ];
}

/// <summary>A server with the scripted model as its only model and the test tools installed.</summary>
public abstract class AgentAppFixtureBase(DbProvider provider) : IAsyncLifetime
{
    public ScriptedModels Models { get; } = new();

    public TestKitTools Tools { get; } = new();

    public TestApp App { get; private set; } = null!;

    public Tokens AdminTokens { get; private set; } = null!;

    public static Dictionary<string, string?> Settings => new()
    {
        ["Sutazai:Inference:Ollama:AutoDetect"] = "false",
        ["Sutazai:Agents:LeaseSeconds"] = "5",
    };

    public void Register(IServiceCollection services)
    {
        services.AddSingleton<IModelProvider>(Models);
        services.AddSingleton<IToolProvider>(Tools);
    }

    public async Task InitializeAsync()
    {
        App = TestApp.Create(provider, Settings, services: Register);
        using var client = App.Client();
        var admin = await Accounts.RegisterAsync(client);
        AdminTokens = await Accounts.LoginAsync(client, admin.Username);
    }

    public async Task DisposeAsync() => await App.DisposeAsync();

    public async Task<HttpClient> UserAsync()
    {
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(App.Client());
        return App.Client(tokens.AccessToken);
    }
}

/// <summary>The agent app (scripted models, test tools) on SQLite.</summary>
public sealed class AgentAppFixture() : AgentAppFixtureBase(DbProvider.Sqlite);

/// <summary>The agent app on PostgreSQL.</summary>
public sealed class PostgresAgentAppFixture() : AgentAppFixtureBase(DbProvider.Postgres);

public static class Runs
{
    public static async Task<string> CreateAgentAsync(HttpClient client, string name, string[] tools, int maxSteps = 8, int timeoutSeconds = 60)
    {
        var response = await client.PostAsJsonAsync("/api/v1/agents", new
        {
            name, instructions = "You are a test agent.", model = ScriptedModels.ModelId, tools, maxSteps, timeoutSeconds,
        });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.ReadJsonAsync()).GetProperty("id").GetString()!;
    }

    public static async Task<Guid> StartAsync(HttpClient client, string agentId, string input, object? options = null)
    {
        var response = await client.PostAsJsonAsync($"/api/v1/agents/{agentId}/runs", new { input, model = ScriptedModels.ModelId, options });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.ReadJsonAsync()).GetProperty("runId").GetGuid();
    }

    public static async Task<JsonElement> GetAsync(HttpClient client, Guid runId)
    {
        var response = await client.GetAsync($"/api/v1/runs/{runId}");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.ReadJsonAsync();
    }

    /// <summary>Polls until the run reaches one of the statuses (30 s at most).</summary>
    public static async Task<JsonElement> WaitForAsync(HttpClient client, Guid runId, params string[] statuses)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var run = await GetAsync(client, runId);
            var status = run.GetProperty("status").GetString()!;
            if (statuses.Contains(status)) return run;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Run {runId} is '{status}', waited for {string.Join("/", statuses)}: {run}");
            await Task.Delay(50);
        }
    }

    public static List<string> StepKinds(JsonElement run) =>
        run.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("kind").GetString()!).ToList();
}

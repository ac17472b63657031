using System.Diagnostics;
using System.Net.Http.Json;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Agents;

/// <summary>
/// Every built-in agent end-to-end on the real in-process llama.cpp provider with the tiny deterministic GGUF model
/// (JSON tool-call format path). The model answers any chat with "Hello! How can I help you?", which the format
/// takes as a final answer, so each run must succeed with exactly that output.
/// </summary>
public sealed class AgentSmokeTests : IAsyncLifetime
{
    private TestApp _app = null!;
    private HttpClient _client = null!;
    private string _repository = null!;

    public async Task InitializeAsync()
    {
        _repository = Directory.CreateTempSubdirectory("sutazai-coder-repo-").FullName;
        using (var git = Process.Start(new ProcessStartInfo("git", ["init", "-q", _repository]) { RedirectStandardError = true })!)
            await git.WaitForExitAsync();
        _app = TestApp.Create(DbProvider.Sqlite, new Dictionary<string, string?>
        {
            ["Sutazai:Inference:LlamaCpp:ContextSize"] = "16384",
            ["Sutazai:Inference:LlamaCpp:KeepAlive"] = "-00:00:01",
            ["Sutazai:Inference:Ollama:AutoDetect"] = "false",
            ["Sutazai:Agents:CoderRepositories"] = _repository,
        });
        // The agents' tool descriptions are long and this model's tokenizer is mostly single bytes: give it room.
        Directory.CreateDirectory(Path.Combine(_app.DataDir, "models"));
        Sutazai.TestSupport.TinyModels.WriteDeterministic(Path.Combine(_app.DataDir, "models", ModelAppFixture.ModelId + ".gguf"),
            Sutazai.TestSupport.DeterministicModelSpec.Default() with { ContextLength = 16384 });
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(_app.Client());
        _client = _app.Client(tokens.AccessToken);
    }

    public async Task DisposeAsync()
    {
        await _app.DisposeAsync();
        Directory.Delete(_repository, recursive: true);
    }

    [Fact]
    public async Task EveryBuiltInAgent_RunsOnTheTinyModel()
    {
        var inputs = new Dictionary<string, object?>
        {
            ["shell"] = null,
            ["engineer"] = null,
            ["coder"] = new { repository = _repository },
            ["crew"] = new
            {
                crew = new
                {
                    process = "sequential",
                    members = new[] { new { role = "researcher", goal = "find", tools = new[] { "files" } }, new { role = "writer", goal = "write", tools = Array.Empty<string>() } },
                    tasks = new[] { new { description = "research", member = "researcher" }, new { description = "write", member = "writer" } },
                },
            },
            ["memory"] = null,
            ["analyst"] = null,
        };
        foreach (var (agent, options) in inputs)
        {
            var response = await _client.PostAsJsonAsync($"/api/v1/agents/{agent}/runs", new { input = "Say hello.", options });
            Assert.Equal(System.Net.HttpStatusCode.Accepted, response.StatusCode);
            var runId = (await response.ReadJsonAsync()).GetProperty("runId").GetGuid();
            var run = await Runs.WaitForAsync(_client, runId, "succeeded", "failed");
            Assert.True(run.GetProperty("status").GetString() == "succeeded", $"{agent}: {run}");
            Assert.Equal("Hello! How can I help you?", run.GetProperty("output").GetString());
            var model = run.GetProperty("steps").EnumerateArray().First(s => s.GetProperty("kind").GetString() == "model");
            Assert.Equal(ModelAppFixture.ModelId, model.GetProperty("data").GetProperty("model").GetString());
            Assert.True(run.GetProperty("usage").GetProperty("outputTokens").GetInt64() > 0, agent);
        }
    }
}

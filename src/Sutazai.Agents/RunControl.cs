using System.Text.Json;
using Sutazai.Data.Entities;

namespace Sutazai.Agents;

/// <summary>One stored step of a run as the API and the run's events show it.</summary>
public sealed record StepView(int Index, string Kind, string? Member, JsonElement Data, DateTime CreatedAt)
{
    public static StepView From(AgentRunStep s) => new(s.Index, s.Kind, s.Member, JsonDocument.Parse(s.Data).RootElement.Clone(), s.CreatedAt);
}

/// <summary>
/// Something that happened in a run, as streamed (SSE, /ws/jarvis). Steps are stored before they are published;
/// tokens are the model's text as it arrives and are not stored one by one.
/// </summary>
public sealed record RunEvent(string Type, Guid RunId, Guid UserId, object Data);

/// <summary>
/// What the agent runtime needs from the host while it executes a run: somewhere to publish the run's events (the
/// host fans them out to this node's watchers and to the other nodes) and the cancellation handle a stop request
/// reaches. The host's <c>RunHub</c> implements it; nothing here knows about sockets or the cluster bus.
/// </summary>
public interface IRunControl
{
    void Publish(RunEvent e);

    /// <summary>Registers a run this process executes, so a cancel request reaches it within the current step.</summary>
    CancellationTokenSource Executing(Guid runId);

    void Done(Guid runId, CancellationTokenSource cts);
}

/// <summary>
/// Where the agent runtime keeps its files: run workspaces and the sandbox's generated /etc, under the data directory.
/// Read when first needed, not when services are built, so a bad configuration is reported by its own validation.
/// </summary>
public sealed class AgentDataDir
{
    private readonly Lazy<string> _path;

    public AgentDataDir(string path) : this(() => path)
    {
    }

    public AgentDataDir(Func<string> path) => _path = new Lazy<string>(path);

    public string Path => _path.Value;
}

using Microsoft.Extensions.AI;
namespace Sutazai.Agents.Tools;

/// What a tool invocation knows about the run it serves. IsAdmin: the run's user is an administrator (a provider may
/// offer admins tools it hides from others, e.g. an MCP server registered for admins only). AgentId: the agent the run
/// belongs to (the sandbox's network allowlist names agents).
public sealed record ToolContext(Guid RunId, Guid UserId, string Workspace, IServiceProvider Services, bool IsAdmin = false, string? AgentId = null);

/// Risk shown on an approval card.
public enum ToolRisk { Low, Medium, High }

/// One function a model may call. SideEffects=true → the runtime asks the user before invoking it.
public sealed record AgentTool(AIFunction Function, bool SideEffects, Func<AIFunctionArguments, ToolRisk> AssessRisk)
{ public string Name => Function.Name; }

/// A family of tools ("shell", "files", "git", "web", "calculator", "knowledge"), registered in DI as IToolProvider.
public interface IToolProvider
{
    string Name { get; }
    string Description { get; }
    /// Whether the family works on this machine right now (e.g. /bin/sh exists), with a reason when not.
    (bool Available, string? Reason) Health();
    IReadOnlyList<AgentTool> Create(ToolContext context);
}

/// Thrown by a tool for an expected failure the model should see (bad path, timeout…); message is shown to the model.
public sealed class ToolException(string message) : Exception(message);

namespace Sutazai.Data.Entities;

/// <summary>A user's own agent: instructions, the tool families it may use, a model and limits.</summary>
public sealed class CustomAgent
{
    public Guid Id { get; set; }

    public Guid OwnerId { get; set; }

    public required string Name { get; set; }

    public string? Description { get; set; }

    public required string Instructions { get; set; }

    public string? Model { get; set; }

    /// <summary>Tool family names, comma-separated (e.g. <c>files,shell</c>).</summary>
    public string Tools { get; set; } = "";

    public int MaxSteps { get; set; }

    public int MaxTokens { get; set; }

    public int TimeoutSeconds { get; set; }

    public DateTime CreatedAt { get; set; }

    public DateTime UpdatedAt { get; set; }
}

/// <summary>One execution of an agent: a durable job whose every step is stored before it is streamed.</summary>
public sealed class AgentRun
{
    public Guid Id { get; set; }

    public Guid UserId { get; set; }

    /// <summary>A built-in agent's name (<c>shell</c>, <c>engineer</c>…) or a custom agent's id.</summary>
    public required string AgentId { get; set; }

    public required string AgentName { get; set; }

    public required string Input { get; set; }

    /// <summary>Agent-specific options as JSON (a crew's members and tasks, the coder's repository…).</summary>
    public string? Options { get; set; }

    public Guid? ConversationId { get; set; }

    /// <summary>Knowledge collections the run may search, comma-separated ids.</summary>
    public string? CollectionIds { get; set; }

    public string? Model { get; set; }

    /// <summary><c>queued</c>, <c>running</c>, <c>waiting_approval</c>, <c>succeeded</c>, <c>failed</c>, <c>cancelled</c>.</summary>
    public string Status { get; set; } = AgentRunStatus.Queued;

    public string? Output { get; set; }

    public string? Error { get; set; }

    public int StepCount { get; set; }

    public long InputTokens { get; set; }

    public long OutputTokens { get; set; }

    /// <summary>The worker executing the run and until when its claim holds (renewed while it works).</summary>
    public string? LeaseOwner { get; set; }

    public DateTime? LeaseUntil { get; set; }

    public DateTime CreatedAt { get; set; }

    public DateTime? StartedAt { get; set; }

    public DateTime? FinishedAt { get; set; }
}

public static class AgentRunStatus
{
    public const string Queued = "queued";
    public const string Running = "running";
    public const string WaitingApproval = "waiting_approval";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";

    public static bool IsTerminal(string status) => status is Succeeded or Failed or Cancelled;
}

public static class ApprovalStatus
{
    public const string Pending = "pending";
    public const string Approved = "approved";
    public const string Denied = "denied";

    /// <summary>Approved with edited arguments of a higher risk than shown; the next round asks again.</summary>
    public const string Escalated = "escalated";
}

/// <summary>One persisted step of a run, in order: a model turn, a tool call, its result, an approval…</summary>
public sealed class AgentRunStep
{
    public Guid Id { get; set; }

    public Guid RunId { get; set; }

    /// <summary>Position in the run, from 0; unique per run so a step is never stored twice.</summary>
    public int Index { get; set; }

    /// <summary><c>model</c>, <c>tool_call</c>, <c>tool_result</c>, <c>approval</c>, <c>denial</c>, <c>delegation</c>, <c>error</c>.</summary>
    public required string Kind { get; set; }

    /// <summary>The crew member (role) that took the step, when the run is a crew.</summary>
    public string? Member { get; set; }

    /// <summary>The step's data as JSON (text, tool name and arguments, result…).</summary>
    public required string Data { get; set; }

    public DateTime CreatedAt { get; set; }
}

/// <summary>A tool call that waits for (or received) the user's decision.</summary>
public sealed class AgentApproval
{
    public Guid Id { get; set; }

    public Guid RunId { get; set; }

    public Guid UserId { get; set; }

    /// <summary>The model's id for the call, linking the approval to its tool call step.</summary>
    public required string CallId { get; set; }

    public required string Tool { get; set; }

    public required string Arguments { get; set; }

    public string? EditedArguments { get; set; }

    /// <summary><c>low</c>, <c>medium</c> or <c>high</c>: the risk of <see cref="Arguments"/>, as the user was shown it.</summary>
    public required string Risk { get; set; }

    /// <summary>The risk of <see cref="EditedArguments"/>, assessed again by the tool before the edited call runs.</summary>
    public string? EditedRisk { get; set; }

    /// <summary>
    /// 0 for the model's call; one more each time an edit raised the risk and the user was asked again (the new round's
    /// <see cref="Arguments"/> are the previous round's edited ones).
    /// </summary>
    public int Round { get; set; }

    /// <summary><c>pending</c>, <c>approved</c>, <c>denied</c>, or <c>escalated</c> (approved with an edit of higher risk, asked again in the next round).</summary>
    public string Status { get; set; } = "pending";

    public Guid? DecidedBy { get; set; }

    public DateTime CreatedAt { get; set; }

    public DateTime? DecidedAt { get; set; }
}

/// <summary>A tool an admin lets agents use without asking each time.</summary>
public sealed class ToolPolicy
{
    public required string Tool { get; set; }

    public bool PreApproved { get; set; }

    public Guid UpdatedBy { get; set; }

    public DateTime UpdatedAt { get; set; }
}

/// <summary>A core memory block (<c>persona</c>, <c>human</c>) the memory agent always has in context.</summary>
public sealed class MemoryBlock
{
    public Guid UserId { get; set; }

    public required string Label { get; set; }

    public string Value { get; set; } = "";

    public DateTime UpdatedAt { get; set; }
}

/// <summary>A passage of archival memory, searched by embedding similarity.</summary>
public sealed class MemoryPassage
{
    public Guid Id { get; set; }

    public Guid UserId { get; set; }

    public required string Text { get; set; }

    /// <summary>The embedding as little-endian floats, and the embedder that made it.</summary>
    public required byte[] Embedding { get; set; }

    public required string EmbeddingModel { get; set; }

    public DateTime CreatedAt { get; set; }
}

/// <summary>An external MCP server (Streamable HTTP or SSE) an admin registered; its tools are the "mcp" tool family.</summary>
public sealed class McpServerRegistration
{
    public Guid Id { get; set; }

    /// <summary>Unique, [a-z0-9-]; tools are named <c>mcp_&lt;name&gt;_&lt;tool&gt;</c>.</summary>
    public required string Name { get; set; }

    public required string Url { get; set; }

    /// <summary>Extra request headers (e.g. Authorization) as a JSON object of strings, or null.</summary>
    public string? Headers { get; set; }

    /// <summary>Every user's agents may use its tools (<c>allowedUsers: ["*"]</c>); otherwise admins and <see cref="AllowedUsers"/> only.</summary>
    public bool AllUsers { get; set; }

    /// <summary>The users (besides admins) whose agents may use the server's tools, and with them its stored headers.</summary>
    public List<McpServerUser> AllowedUsers { get; set; } = [];

    public Guid CreatedBy { get; set; }

    public DateTime CreatedAt { get; set; }
}

/// <summary>A user whose agents may use a registered MCP server; removed with the user or the server.</summary>
public sealed class McpServerUser
{
    public Guid ServerId { get; set; }

    public Guid UserId { get; set; }
}

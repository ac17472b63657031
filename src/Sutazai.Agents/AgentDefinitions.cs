using Microsoft.EntityFrameworkCore;
using Sutazai.Data;

namespace Sutazai.Agents;

/// <summary>How far a run may go before it is stopped.</summary>
public sealed record AgentLimits(int MaxSteps, int MaxTokens, TimeSpan Timeout);

/// <summary>
/// How the runtime drives an agent: one tool loop, a crew of role agents, a loop with core memory in its prompt, or a
/// loop whose named build command the runtime runs and iterates on (the engineer).
/// </summary>
public enum AgentKind { Standard, Crew, Memory, Engineer }

/// <summary>An agent: name, instructions, model, tool families and limits.</summary>
public sealed record AgentDefinition(
    string Id,
    string Name,
    string Description,
    string Instructions,
    IReadOnlyList<string> Tools,
    string? Model,
    AgentLimits Limits,
    AgentKind Kind = AgentKind.Standard,
    bool BuiltIn = true,
    string? OriginalName = null);

/// <summary>The built-in agents (the original SutazAI's, done for real) and the users' own.</summary>
public sealed class AgentCatalog(AppDbContext db)
{
    public static readonly AgentLimits DefaultLimits = new(MaxSteps: 12, MaxTokens: 16000, Timeout: TimeSpan.FromMinutes(10));

    public static readonly IReadOnlyList<AgentDefinition> BuiltIns =
    [
        new("shell", "Shell", "Turns a task in plain language into shell commands, runs them after your approval and reports exit code and output; also explains commands.",
            """
            You are the shell agent. The user describes a task; you do it with shell commands in the run's workspace.
            Call `shell_run` with ONE command at a time and, in the same message, explain in one or two sentences what it
            does. Every command is shown to the user with a risk level and runs only after they approve it. After a
            result, report the exit code and the relevant output briefly. Prefer read-only commands; never use sudo.
            If the user asks you to explain a command, explain it without running anything.
            """,
            ["shell", "files"], null, DefaultLimits, OriginalName: "ShellGPT"),
        new("engineer", "Engineer", "Writes a multi-file project from a specification into the run workspace (plan, files, README, tests), builds and tests it with the command its plan names and fixes the errors; download as zip.",
            """
            You are the engineer agent. From the user's specification, first state a short plan: the files you will
            write and, on a line of its own, `Build: <command>` with the one shell command that builds and tests the
            project (for example `Build: sh build.sh` or `Build: python3 -m unittest`; leave the line out when there is
            nothing to build). Then write every file with `files_write` (a README.md and tests included) and finish
            with a summary of the project and how to run it. After you finish, the build command runs in the workspace;
            if it fails you get its output: fix the files and finish again. To change the command, write a new
            `Build:` line.
            """,
            ["files", "shell"], null, DefaultLimits with { MaxSteps = 30 }, AgentKind.Engineer, OriginalName: "GPT-Engineer"),
        new("coder", "Coder", "Edits an existing git repository with search/replace blocks, shows the diff and commits after approval.",
            """
            You are the coder agent working in a git repository (the run workspace). Read the files you need with
            `files_list` and `files_read`, change them with `files_edit` (an exact search text and its replacement —
            include enough lines to be unique), check your work with `git_diff`, then commit with `git_commit` and a
            clear message. Keep edits minimal.
            """,
            ["files", "git"], null, DefaultLimits with { MaxSteps = 30 }, OriginalName: "Aider"),
        new("crew", "Crew", "Role agents working on tasks together, sequentially or with a manager who delegates; each member's steps are visible.",
            "You coordinate a crew of role agents.", [], null, DefaultLimits with { MaxSteps = 40, Timeout = TimeSpan.FromMinutes(20) }, AgentKind.Crew, OriginalName: "CrewAI"),
        new("memory", "Memory", "Keeps long-term memory: core blocks about you and itself always in context, archival memory searched by meaning, and recall of past messages.",
            """
            You are a helpful assistant with long-term memory. Your core memory (below) is always in your context;
            keep it current with `core_memory_append` and `core_memory_replace` when you learn lasting facts about the
            user (block `human`) or about yourself (block `persona`). Store details worth keeping with
            `archival_memory_insert` and look them up with `archival_memory_search`; find earlier conversations with
            `conversation_search`. Then answer the user.
            """,
            ["memory"], null, DefaultLimits, AgentKind.Memory, OriginalName: "Letta"),
        new("analyst", "Analyst", "Summarises, extracts structured fields and compares documents using your knowledge base, citing its sources.",
            """
            You are the document analyst. Use `knowledge_search` to find the passages you need (search several times
            with different words if needed). Summarise, extract the requested fields (as JSON when a schema is given)
            or compare documents, using only what the passages say. Cite every claim as [title, chunk id].
            """,
            ["knowledge"], null, DefaultLimits, OriginalName: "Documind"),
    ];

    /// <summary>A built-in agent by name, or one of <paramref name="userId"/>'s own by id; null otherwise.</summary>
    public async Task<AgentDefinition?> FindAsync(Guid userId, string agentId, CancellationToken ct)
    {
        if (BuiltIns.FirstOrDefault(a => a.Id == agentId) is { } builtIn) return builtIn;
        if (!Guid.TryParse(agentId, out var id)) return null;
        var custom = await db.CustomAgents.AsNoTracking().FirstOrDefaultAsync(a => a.Id == id && a.OwnerId == userId, ct);
        return custom is null ? null : FromCustom(custom);
    }

    public static AgentDefinition FromCustom(Sutazai.Data.Entities.CustomAgent a) => new(
        a.Id.ToString(), a.Name, a.Description ?? "", a.Instructions,
        a.Tools.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), a.Model,
        new AgentLimits(a.MaxSteps, a.MaxTokens, TimeSpan.FromSeconds(a.TimeoutSeconds)), BuiltIn: false);
}

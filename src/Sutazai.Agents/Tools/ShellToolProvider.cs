using System.ComponentModel;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using Sutazai.Agents.Sandbox;

namespace Sutazai.Agents.Tools;

/// <summary>shell_run: one <c>/bin/sh -c</c> command in the run's workspace, inside the OS sandbox (<see cref="ProcessSandbox"/>).</summary>
public sealed class ShellToolProvider(IOptions<AgentToolOptions> options, ProcessSandbox sandbox) : IToolProvider
{
    public const int MaxCommandLength = 100_000;

    private readonly AgentToolOptions _options = options.Value;

    public string Name => "shell";

    public string Description => "Runs shell commands in the run's workspace inside an OS sandbox (bubblewrap: no host files, no network by default, kernel limits).";

    public (bool Available, string? Reason) Health()
    {
        if (!File.Exists(ShellRunner.Shell)) return (false, $"{ShellRunner.Shell} does not exist.");
        var status = sandbox.Status;
        return status.Available ? (true, null) : (false, $"The sandbox is unavailable: {status.Reason}.");
    }

    public IReadOnlyList<AgentTool> Create(ToolContext context) =>
    [
        new(AIFunctionFactory.Create(
            ([Description("The command line, run by /bin/sh -c in the workspace directory.")] string command,
             [Description("Seconds before the command and everything it started are killed.")] int? timeoutSeconds = null,
             CancellationToken cancellationToken = default) => RunAsync(context, command, timeoutSeconds, cancellationToken),
            "shell_run",
            "Runs a shell command in the workspace (mounted at /workspace, the working directory) and returns exitCode, stdout, stderr, " +
            "timedOut, truncated, durationMs, and limitExceeded/error when a sandbox limit stopped it. The sandbox holds the system's programs " +
            "read-only and nothing else of the host; /tmp is private; there is no standard input" +
            (sandbox.Options.NetworkAllowed(context.AgentId, Name) ? "." : " and no network.") +
            $" Timeout {_options.ShellTimeoutSeconds} s unless given, at most {_options.ShellMaxTimeoutSeconds} s; each output keeps its first {_options.OutputCapBytes} bytes."),
            SideEffects: true, arguments => ShellRisk.Assess(ToolArguments.GetString(arguments, "command"))),
    ];

    private async Task<ShellResult> RunAsync(ToolContext context, string command, int? timeoutSeconds, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(command)) throw new ToolException("Give a command to run.");
        if (command.Length > MaxCommandLength) throw new ToolException($"The command is longer than {MaxCommandLength} characters.");
        if (command.Contains('\0', StringComparison.Ordinal)) throw new ToolException("The command contains a NUL byte.");
        var seconds = timeoutSeconds ?? _options.ShellTimeoutSeconds;
        if (seconds < 1 || seconds > _options.ShellMaxTimeoutSeconds)
            throw new ToolException($"timeoutSeconds must be between 1 and {_options.ShellMaxTimeoutSeconds}.");
        var workspace = Workspace.Open(context.Workspace);
        var limits = sandbox.Options;

        var used = WorkspaceUsage.Of(workspace.Root);
        if (used > limits.WorkspaceQuotaBytes)
            throw new ToolException($"The workspace holds {ProcessSandbox.Bytes(used)}, over its quota of {ProcessSandbox.Bytes(limits.WorkspaceQuotaBytes)} (Sutazai:Agents:Sandbox:WorkspaceQuotaBytes); delete files before running commands.");
        if (await WorkspaceUsage.OfUserAsync(context.Services, context.UserId, context.RunId, ct) + used is { } userUsed && userUsed > limits.UserQuotaBytes)
            throw new ToolException($"Your agent workspaces hold {ProcessSandbox.Bytes(userUsed)}, over your quota of {ProcessSandbox.Bytes(limits.UserQuotaBytes)} (Sutazai:Agents:Sandbox:UserQuotaBytes); delete old runs before running commands.");

        var result = await sandbox.RunAsync(new SandboxCommand(command, workspace.Root, context.AgentId, Name, TimeSpan.FromSeconds(seconds), _options.OutputCapBytes), ct);
        var after = WorkspaceUsage.Of(workspace.Root);
        if (result.LimitExceeded is null && after > limits.WorkspaceQuotaBytes)
            result = result with
            {
                LimitExceeded = "workspace-disk",
                Error = $"The workspace now holds {ProcessSandbox.Bytes(after)}, over its quota of {ProcessSandbox.Bytes(limits.WorkspaceQuotaBytes)} (Sutazai:Agents:Sandbox:WorkspaceQuotaBytes); further commands are refused until files are deleted.",
            };
        return result;
    }
}

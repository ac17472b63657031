using System.ComponentModel;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;

namespace Sutazai.Server.Agents.Tools;

/// <summary>shell_run: one <c>/bin/sh -c</c> command in the run's workspace (see <see cref="ShellRunner"/>).</summary>
public sealed class ShellToolProvider(IOptions<AgentToolOptions> options) : IToolProvider
{
    public const int MaxCommandLength = 100_000;

    private readonly AgentToolOptions _options = options.Value;

    public string Name => "shell";

    public string Description => "Runs shell commands in the run's workspace with a cleared environment, a timeout and capped output.";

    public (bool Available, string? Reason) Health()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD()) return (false, "The shell tool needs a Unix system.");
        if (!File.Exists(ShellRunner.Shell)) return (false, $"{ShellRunner.Shell} does not exist.");
        if (ShellRunner.Setsid is null) return (false, "setsid (util-linux) is not installed, so a command's processes could not be killed together.");
        return (true, null);
    }

    public IReadOnlyList<AgentTool> Create(ToolContext context) =>
    [
        new(AIFunctionFactory.Create(
            ([Description("The command line, run by /bin/sh -c in the workspace directory.")] string command,
             [Description("Seconds before the command and everything it started are killed.")] int? timeoutSeconds = null,
             CancellationToken cancellationToken = default) => RunAsync(context, command, timeoutSeconds, cancellationToken),
            "shell_run",
            "Runs a shell command in the workspace and returns exitCode, stdout, stderr, timedOut, truncated and durationMs. " +
            "The environment holds only PATH, HOME (the workspace), LANG and TMPDIR; there is no standard input. " +
            $"Timeout {_options.ShellTimeoutSeconds} s unless given, at most {_options.ShellMaxTimeoutSeconds} s; each output keeps its first {_options.OutputCapBytes} bytes."),
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
        return await ShellRunner.RunAsync(command, workspace.Root, TimeSpan.FromSeconds(seconds), _options.OutputCapBytes, ct);
    }
}

using System.CommandLine;
using System.Text.Json;

namespace Sutazai.Server.Cli;

/// <summary>
/// <c>sutazai run shell "find big files"</c>: an agent run on the server, followed in the terminal. Every tool call
/// that needs approval is shown (tool, command, explanation, risk) and runs only after <c>y</c>; anything else, or
/// the end of input, denies it.
/// </summary>
public static class RunCommand
{
    public static void AddTo(RootCommand root, CliContext context)
    {
        var credentials = new Credentials();
        var agent = new Argument<string>("agent") { Description = "The agent: shell, engineer, coder, crew, memory, analyst, or one of yours (sutazai agents are listed by GET /api/v1/agents)." };
        var input = new Argument<string[]>("input") { Description = "What to do.", Arity = ArgumentArity.OneOrMore };
        var model = new Option<string?>("--model", "-m") { Description = "Model id (default: the agent's, else the server's default)." };
        var yes = new Option<bool>("--yes", "-y") { Description = "Approve every tool call without asking (careful)." };
        var run = new Command("run", "Run an agent and follow it; tool calls that need approval ask y/N here.") { agent, input, model, yes };
        credentials.AddTo(run);
        run.Act(context, async (parse, ct) =>
        {
            using var client = credentials.Connect(parse);
            var started = await client.PostAsync($"api/v1/agents/{Uri.EscapeDataString(parse.GetRequiredValue(agent))}/runs",
                new { input = string.Join(' ', parse.GetRequiredValue(input)), model = parse.GetValue(model) }, ct);
            var id = started.GetProperty("runId").GetGuid();
            context.Console.Error.WriteLine($"Run {id}");
            using var interrupt = new Interrupt();
            var printed = -1;
            try
            {
                while (true)
                {
                    var approvals = new List<JsonElement>();
                    await foreach (var e in client.StreamAsync(HttpMethod.Get, $"api/v1/runs/{id}/events", null, interrupt.Token))
                    {
                        switch (e.Name)
                        {
                            case "step" when e.Data.GetProperty("index").GetInt32() > printed:
                                printed = e.Data.GetProperty("index").GetInt32();
                                PrintStep(e.Data, context.Console);
                                break;
                            case "approval_required":
                                approvals.Add(e.Data);
                                break;
                            case "complete":
                                if (e.Data.TryGetProperty("output", out var output) && output.GetString() is { Length: > 0 } text) context.Console.Line(text);
                                return ExitCodes.Ok;
                            case "error":
                                throw new CliException(ExitCodes.Failed, $"The run ended {e.Data.GetProperty("status").GetString()}: {(e.Data.TryGetProperty("error", out var error) ? error.GetString() : null) ?? "no reason given"}");
                        }
                    }
                    if (approvals.Count == 0) throw new CliException(ExitCodes.Failed, "The run's event stream ended early.");
                    foreach (var approval in approvals)
                    {
                        var approve = parse.GetValue(yes) || Ask(approval, context.Console);
                        if (!approve && Console.IsInputRedirected && Console.In.Peek() < 0)
                        {
                            // No one left to ask: deny and stop the run rather than leave it waiting forever.
                            await client.PostAsync($"api/v1/runs/{id}/approvals/{approval.GetProperty("id").GetGuid()}", new { approve = false }, ct);
                            await client.PostAsync($"api/v1/runs/{id}/cancel", null, ct);
                            context.Console.Error.WriteLine("Denied; no more input, so the run is cancelled.");
                            return ExitCodes.Failed;
                        }
                        await client.PostAsync($"api/v1/runs/{id}/approvals/{approval.GetProperty("id").GetGuid()}", new { approve }, ct);
                    }
                }
            }
            catch (OperationCanceledException) when (interrupt.Token.IsCancellationRequested)
            {
                await client.PostAsync($"api/v1/runs/{id}/cancel", null, CancellationToken.None);
                context.Console.Error.WriteLine("Cancelled.");
                return ExitCodes.Interrupted;
            }
        });
        root.Subcommands.Add(run);
    }

    /// <summary>Shows the call and reads y/N: only an explicit yes approves.</summary>
    private static bool Ask(JsonElement approval, CliConsole console)
    {
        var arguments = approval.GetProperty("arguments");
        console.Error.WriteLine($"The agent wants to run {approval.GetProperty("tool").GetString()} (risk: {approval.GetProperty("risk").GetString()}):");
        if (arguments.ValueKind == JsonValueKind.Object && arguments.TryGetProperty("command", out var command))
        {
            console.Error.WriteLine("  $ " + command.GetString());
            foreach (var property in arguments.EnumerateObject().Where(p => p.Name != "command"))
                console.Error.WriteLine($"  {property.Name}: {(property.Value.ValueKind == JsonValueKind.String ? property.Value.GetString() : property.Value.GetRawText())}");
        }
        else console.Error.WriteLine("  " + arguments.GetRawText());
        console.Error.Write("Run it? [y/N] ");
        var answer = Console.In.ReadLine()?.Trim();
        if (Console.IsInputRedirected) console.Error.WriteLine(answer);
        return answer is "y" or "Y" or "yes" or "Yes" or "YES";
    }

    private static void PrintStep(JsonElement step, CliConsole console)
    {
        var data = step.GetProperty("data");
        switch (step.GetProperty("kind").GetString())
        {
            case "model" when data.TryGetProperty("text", out var text) && text.GetString() is { Length: > 0 } said:
                console.Error.WriteLine("· " + said.Trim());
                break;
            case "tool_result":
                if (data.TryGetProperty("denied", out var denied) && denied.ValueKind == JsonValueKind.True)
                {
                    console.Error.WriteLine("  (denied)");
                    break;
                }
                if (data.TryGetProperty("result", out var result) && result.ValueKind == JsonValueKind.Object)
                {
                    if (result.TryGetProperty("stdout", out var stdout) && stdout.GetString() is { Length: > 0 } o) console.Out.Write(o.EndsWith('\n') ? o : o + "\n");
                    if (result.TryGetProperty("stderr", out var stderr) && stderr.GetString() is { Length: > 0 } err) console.Error.Write(err.EndsWith('\n') ? err : err + "\n");
                    if (result.TryGetProperty("exitCode", out var exit) && exit.ValueKind == JsonValueKind.Number && exit.GetInt32() != 0) console.Error.WriteLine($"  (exit code {exit.GetInt32()})");
                }
                else if (data.TryGetProperty("error", out var error)) console.Error.WriteLine("  error: " + (error.ValueKind == JsonValueKind.String ? error.GetString() : error.GetRawText()));
                break;
        }
    }
}

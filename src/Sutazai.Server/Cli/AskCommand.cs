using System.CommandLine;
using System.Text.Json;

namespace Sutazai.Server.Cli;

/// <summary>
/// <c>sutazai ask "…"</c>: one question, the answer streamed to standard output as it is written. Standard input,
/// when piped, is added below the question (<c>git diff | sutazai ask "review this"</c>).
/// </summary>
public static class AskCommand
{
    public static void AddTo(RootCommand root, CliContext context)
    {
        var credentials = new Credentials();
        var prompt = new Argument<string[]>("prompt") { Description = "The question (several words are joined with spaces).", Arity = ArgumentArity.ZeroOrMore };
        var model = new Option<string?>("--model", "-m") { Description = "Model id (default: the server's default model)." };
        var system = new Option<string?>("--system", "-s") { Description = "A system prompt." };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "Most tokens to generate." };
        var temperature = new Option<double?>("--temperature", "-t") { Description = "0 (deterministic) to 2." };
        var ask = new Command("ask", "Ask one question and stream the answer; reads standard input too when it is piped.") { prompt, model, system, maxTokens, temperature };
        credentials.AddTo(ask);
        ask.Act(context, async (parse, _) =>
        {
            var question = string.Join(' ', parse.GetValue(prompt) ?? []);
            if (Console.IsInputRedirected)
            {
                var piped = await Console.In.ReadToEndAsync();
                if (piped.Length > 0) question = question.Length == 0 ? piped : $"{question}\n\n{piped}";
            }
            if (string.IsNullOrWhiteSpace(question)) throw new CliException(ExitCodes.Usage, "Nothing to ask: give a question, or pipe text in.");
            List<object> messages = [];
            if (parse.GetValue(system) is { Length: > 0 } s) messages.Add(new { role = "system", content = s });
            messages.Add(new { role = "user", content = question });
            var options = new Dictionary<string, object>();
            if (parse.GetValue(maxTokens) is { } max) options["maxTokens"] = max;
            if (parse.GetValue(temperature) is { } temp) options["temperature"] = temp;

            using var client = credentials.Connect(parse);
            using var interrupt = new Interrupt();
            var output = context.Console.Out;
            try
            {
                await foreach (var e in client.StreamAsync(HttpMethod.Post, "api/v1/generate", new { model = parse.GetValue(model), messages, options, stream = true }, interrupt.Token))
                {
                    switch (e.Name)
                    {
                        case "token":
                            await output.WriteAsync(e.Data.GetProperty("content").GetString());
                            await output.FlushAsync();
                            break;
                        case "done":
                            await output.WriteLineAsync();
                            return ExitCodes.Ok;
                        case "error":
                            await output.WriteLineAsync();
                            throw new CliException(Status(e.Data) is { } status ? ServerClient.ExitCodeFor(status) : ExitCodes.Failed,
                                Status(e.Data) is { } code ? $"{code} {Detail(e.Data)}" : Detail(e.Data));
                    }
                }
            }
            catch (OperationCanceledException) when (interrupt.Token.IsCancellationRequested)
            {
                await output.WriteLineAsync();
                return ExitCodes.Interrupted;
            }
            throw new CliException(ExitCodes.Failed, "The answer ended before it was complete.");
        });
        root.Subcommands.Add(ask);
    }

    /// <summary>The HTTP status an error event carries (a failure after the stream began), when it does.</summary>
    public static int? Status(JsonElement error) =>
        error.ValueKind == JsonValueKind.Object && error.TryGetProperty("status", out var s) && s.ValueKind == JsonValueKind.Number ? s.GetInt32() : null;

    public static string Detail(JsonElement error) =>
        error.ValueKind == JsonValueKind.Object && error.TryGetProperty("detail", out var d) && d.GetString() is { } detail ? detail
        : error.ValueKind == JsonValueKind.Object && error.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.String ? e.GetString()!
        : error.ToString();
}

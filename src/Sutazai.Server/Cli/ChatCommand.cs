using System.CommandLine;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace Sutazai.Server.Cli;

/// <summary>
/// <c>sutazai chat</c>: a conversation in the terminal, stored on the server like one in the web UI (resumable with
/// <c>--conversation</c>). Replies stream as they are written; Ctrl+C during a reply stops it and the server keeps the
/// partial answer (marked stopped); Ctrl+C at the prompt, <c>/exit</c> or end of input leaves.
/// </summary>
public static class ChatCommand
{
    private const string Help = "/new  a new conversation · /model [id]  show or change the model · /history  the conversation so far · /exit";

    public static void AddTo(RootCommand root, CliContext context)
    {
        var credentials = new Credentials();
        var model = new Option<string?>("--model", "-m") { Description = "Model id (default: the server's default model)." };
        var conversation = new Option<Guid?>("--conversation", "-c") { Description = "Go on with this conversation (its id, as chat prints when it ends)." };
        var system = new Option<string?>("--system", "-s") { Description = "System prompt of a new conversation." };
        var chat = new Command("chat", "Chat with a model in the terminal: streaming replies, /model, /new, /history; Ctrl+C stops a reply.") { model, conversation, system };
        credentials.AddTo(chat);
        chat.Act(context, async (parse, ct) =>
        {
            using var client = credentials.Connect(parse);
            var session = new Session(client, context.Console, parse.GetValue(model), parse.GetValue(system));
            if (parse.GetValue(conversation) is { } id) await session.ResumeAsync(id, ct);
            else await client.GetAsync("api/v1/users/me", ct); // a wrong key or address is said now, not after the first question
            return await session.RunAsync(ct);
        });
        root.Subcommands.Add(chat);
    }

    private sealed class Session(ServerClient client, CliConsole console, string? model, string? systemPrompt)
    {
        private Guid? _conversation;
        private string? _model = model;
        private CancellationTokenSource? _reply;

        public async Task ResumeAsync(Guid id, CancellationToken ct)
        {
            var found = await client.GetAsync($"api/v1/conversations/{id}", ct);
            _conversation = id;
            _model ??= found.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null;
            console.Error.WriteLine($"Resuming \"{found.GetProperty("title").GetString()}\".");
        }

        public async Task<int> RunAsync(CancellationToken ct)
        {
            // Ctrl+C stops a running reply; at the prompt it is left to end the program as usual.
            using var signal = PosixSignalRegistration.Create(PosixSignal.SIGINT, c =>
            {
                if (_reply is not { } reply) return;
                c.Cancel = true;
                reply.Cancel();
            });
            if (CliConsole.InputIsTerminal) console.Error.WriteLine($"Chatting with {client.BaseUrl} — {Help}");
            try
            {
                while (true)
                {
                    if (CliConsole.InputIsTerminal) await console.Error.WriteAsync("> ");
                    var line = await Console.In.ReadLineAsync(ct);
                    if (line is null) return ExitCodes.Ok;
                    line = line.Trim();
                    if (line.Length == 0) continue;
                    if (line.StartsWith('/'))
                    {
                        if (!await CommandAsync(line, ct)) return ExitCodes.Ok;
                        continue;
                    }
                    await ReplyAsync(line, ct);
                }
            }
            finally
            {
                if (_conversation is { } id) console.Error.WriteLine($"Conversation {id}: go on with sutazai chat --conversation {id}");
            }
        }

        /// <summary>A slash command; false to leave.</summary>
        private async Task<bool> CommandAsync(string line, CancellationToken ct)
        {
            var parts = line.Split(' ', 2, StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            switch (parts[0])
            {
                case "/exit" or "/quit" or "/q":
                    return false;
                case "/new":
                    _conversation = null;
                    console.Line("(new conversation)");
                    return true;
                case "/model" when parts.Length == 1:
                    console.Line("model: " + (_model ?? "the server's default"));
                    return true;
                case "/model":
                    _model = parts[1];
                    if (_conversation is { } id) await client.PatchAsync($"api/v1/conversations/{id}", new { model = _model }, ct);
                    console.Line("(model: " + _model + ")");
                    return true;
                case "/history":
                    if (_conversation is not { } current)
                    {
                        console.Line("(nothing yet)");
                        return true;
                    }
                    foreach (var message in (await client.GetAsync($"api/v1/conversations/{current}/messages", ct)).EnumerateArray())
                    {
                        var role = message.GetProperty("role").GetString();
                        var status = message.TryGetProperty("status", out var s) && s.GetString() is { } st && st != "complete" ? $" [{st}]" : "";
                        console.Line($"{(role == "user" ? "you" : role)}{status}: {message.GetProperty("content").GetString()}");
                    }
                    return true;
                default:
                    console.Line(Help);
                    return true;
            }
        }

        private async Task ReplyAsync(string content, CancellationToken ct)
        {
            _conversation ??= (await client.PostAsync("api/v1/conversations", new { model = _model, systemPrompt }, ct)).GetProperty("id").GetGuid();
            using var reply = CancellationTokenSource.CreateLinkedTokenSource(ct);
            _reply = reply;
            var output = console.Out;
            try
            {
                await foreach (var e in client.StreamAsync(HttpMethod.Post, $"api/v1/conversations/{_conversation}/messages", new { content, model = _model }, reply.Token))
                {
                    if (e.Name == "token")
                    {
                        await output.WriteAsync(e.Data.GetProperty("content").GetString());
                        await output.FlushAsync(CancellationToken.None);
                    }
                    else if (e.Name == "error")
                    {
                        await output.WriteLineAsync();
                        console.Fail(AskCommand.Detail(e.Data));
                        return;
                    }
                }
                await output.WriteLineAsync();
            }
            catch (OperationCanceledException) when (reply.IsCancellationRequested && !ct.IsCancellationRequested)
            {
                _reply = null;
                // The server generates on when a client goes away; stop it, and it stores what was written so far.
                try
                {
                    await client.PostAsync($"api/v1/conversations/{_conversation}/stop", null, CancellationToken.None);
                }
                catch (CliException ex) when (ex.ExitCode == ExitCodes.Usage)
                {
                    // 409: it had just finished.
                }
                await output.WriteLineAsync();
                console.Line("[stopped]");
            }
            catch (CliException ex) when (ex.ExitCode is ExitCodes.NotFound or ExitCodes.Usage or ExitCodes.Unavailable or ExitCodes.Failed)
            {
                // An unknown model, a reply already running, a model backend that is down: say so and stay in the chat.
                console.Fail(ex.Message);
            }
            finally
            {
                _reply = null;
            }
        }
    }
}

using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;

namespace Sutazai.Agents;

/// <summary>
/// Tool calling for models without native support (the in-process llama.cpp models): the tools are described in the
/// system prompt and the model answers with ONE JSON object, <c>{"tool": "name", "arguments": {…}}</c> to call a tool
/// or <c>{"final": "answer"}</c> (plain text is taken as the final answer too). The reply is parsed strictly and turned
/// into the same <see cref="FunctionCallContent"/> native providers produce, so the runtime has one path. A reply that
/// starts like JSON but is not a valid call fails with a clear message instead of being guessed at
/// (docs/agents.md documents the format).
/// </summary>
public sealed class JsonToolCallingChatClient(IChatClient inner) : DelegatingChatClient(inner)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public override async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        if (options?.Tools is not { Count: > 0 } tools) return await base.GetResponseAsync(messages, options, cancellationToken);
        var plain = options.Clone();
        plain.Tools = null;
        var response = await base.GetResponseAsync(Rewrite(messages, tools), plain, cancellationToken);
        var message = new ChatMessage(ChatRole.Assistant, Parse(response.Text, tools));
        return new ChatResponse(message) { Usage = response.Usage, ModelId = response.ModelId, FinishReason = response.FinishReason };
    }

    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (options?.Tools is not { Count: > 0 })
        {
            await foreach (var update in base.GetStreamingResponseAsync(messages, options, cancellationToken)) yield return update;
            yield break;
        }
        // A tool call is only known once the whole reply is in, so this turn is not streamed token by token.
        var response = await GetResponseAsync(messages, options, cancellationToken);
        foreach (var update in response.ToChatResponseUpdates()) yield return update;
    }

    /// <summary>The tool list and the reply format as a system message; earlier calls and results as plain text.</summary>
    internal static List<ChatMessage> Rewrite(IEnumerable<ChatMessage> messages, IList<AITool> tools)
    {
        var protocol = new StringBuilder();
        protocol.AppendLine("You can call tools. To call one, reply with ONLY this JSON and nothing else:");
        protocol.AppendLine("{\"tool\": \"<tool name>\", \"arguments\": {<arguments matching the tool's schema>}}");
        protocol.AppendLine("When you have the final answer, reply with plain text (or {\"final\": \"<answer>\"}).");
        protocol.AppendLine("Tools:");
        foreach (var tool in tools.OfType<AIFunctionDeclaration>())
            protocol.AppendLine($"- {tool.Name}: {tool.Description} Arguments schema: {tool.JsonSchema.GetRawText()}");

        var result = new List<ChatMessage>();
        var systemDone = false;
        foreach (var message in messages)
        {
            if (message.Role == ChatRole.System && !systemDone)
            {
                result.Add(new ChatMessage(ChatRole.System, message.Text + "\n\n" + protocol));
                systemDone = true;
                continue;
            }
            if (message.Role == ChatRole.Assistant && message.Contents.OfType<FunctionCallContent>().Any())
            {
                var call = message.Contents.OfType<FunctionCallContent>().First();
                result.Add(new ChatMessage(ChatRole.Assistant, JsonSerializer.Serialize(new { tool = call.Name, arguments = call.Arguments }, Json)));
                continue;
            }
            if (message.Role == ChatRole.Tool)
            {
                var text = string.Join("\n", message.Contents.OfType<FunctionResultContent>().Select(r => $"Tool result: {r.Result}"));
                result.Add(new ChatMessage(ChatRole.User, text));
                continue;
            }
            result.Add(message);
        }
        if (!systemDone) result.Insert(0, new ChatMessage(ChatRole.System, protocol.ToString()));
        return result;
    }

    /// <summary>The reply as a tool call or final text; throws <see cref="RunFailedException"/> for a malformed call.</summary>
    internal static List<AIContent> Parse(string text, IList<AITool> tools)
    {
        var body = text.Trim();
        if (body.StartsWith("```", StringComparison.Ordinal))
        {
            var firstNewline = body.IndexOf('\n', StringComparison.Ordinal);
            var fenceEnd = body.LastIndexOf("```", StringComparison.Ordinal);
            if (firstNewline > 0 && fenceEnd > firstNewline) body = body[(firstNewline + 1)..fenceEnd].Trim();
        }
        if (!body.StartsWith('{')) return [new TextContent(text)];

        JsonElement root;
        try
        {
            using var document = JsonDocument.Parse(body);
            root = document.RootElement.Clone();
        }
        catch (JsonException ex)
        {
            throw new RunFailedException($"The model's reply looked like a JSON tool call but is not valid JSON ({ex.Message}). Reply: {Shorten(text)}");
        }
        if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("final", out var final) && final.ValueKind == JsonValueKind.String)
            return [new TextContent(final.GetString()!)];
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("tool", out var name) || name.ValueKind != JsonValueKind.String)
            throw new RunFailedException($"The model's JSON reply has neither a string \"tool\" nor a string \"final\". Reply: {Shorten(text)}");
        var arguments = root.TryGetProperty("arguments", out var a) ? a : default;
        if (arguments.ValueKind is not (JsonValueKind.Object or JsonValueKind.Undefined))
            throw new RunFailedException($"The model's tool call for '{name.GetString()}' has \"arguments\" that are not a JSON object. Reply: {Shorten(text)}");
        if (!tools.Any(t => t.Name == name.GetString()))
            throw new RunFailedException($"The model called an unknown tool '{name.GetString()}'. Tools: {string.Join(", ", tools.Select(t => t.Name))}.");
        var dictionary = arguments.ValueKind == JsonValueKind.Object ? AgentRunner.ToDictionary(arguments) : [];
        return [new FunctionCallContent("call_" + Guid.NewGuid().ToString("N")[..12], name.GetString()!, dictionary)];
    }

    private static string Shorten(string text) => text.Length <= 300 ? text : text[..300] + "…";
}

using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Sutazai.Inference.Tests.Fakes;

/// <summary>
/// Speaks the OpenAI REST API as vLLM / llama-server do under <c>/v1</c>: <c>GET /models</c>,
/// <c>POST /chat/completions</c> (JSON, or SSE <c>chat.completion.chunk</c> events) and <c>POST /completions</c> (SSE
/// <c>text_completion</c> events), each stream ending with <c>data: [DONE]</c> and, when
/// <c>stream_options.include_usage</c> is asked for, a usage-only chunk with <c>choices: []</c> before it.
/// Replies are the fixed tokens below, cut to <c>max_completion_tokens</c> / <c>max_tokens</c> (then
/// <c>finish_reason: "length"</c>).
/// </summary>
public sealed class FakeOpenAIServer : FakeServer
{
    public const string Qwen = "qwen2.5-0.5b-instruct";
    public const string Llama = "llama-3.2-1b-instruct";
    public const int PromptTokens = 9;
    public const long Created = 1736936430;

    public static readonly string[] ChatTokens = ["Hi", " there", "!"];
    public static readonly string[] CompletionTokens = [" jumps", " over", " the", " lazy", " dog"];

    private FakeOpenAIServer()
    {
    }

    /// <summary>The API root the providers are configured with: <c>http://127.0.0.1:port/v1</c>.</summary>
    public string BaseUrl => new Uri(Root, "v1").ToString();

    /// <summary>When set, requests without <c>Authorization: Bearer {key}</c> get 401.</summary>
    public string? RequiredApiKey { get; set; }

    /// <summary>False mimics a server that ignores <c>stream_options.include_usage</c>.</summary>
    public bool HonorIncludeUsage { get; set; } = true;

    /// <summary>When set, a stream sends one chunk, then an <c>{"error": {...}}</c> event, then ends.</summary>
    public string? ErrorEventAfterFirstChunk { get; set; }

    /// <summary>The fake's embedding of a text: its length, its last character's code and -0.25.</summary>
    public static float[] EmbeddingOf(string text) => [text.Length, text.Length > 0 ? text[^1] : 0, -0.25f];

    public static async Task<FakeOpenAIServer> StartNewAsync()
    {
        var server = new FakeOpenAIServer();
        await server.StartAsync();
        return server;
    }

    protected override void Map(WebApplication app)
    {
        app.Use(async (context, next) =>
        {
            if (RequiredApiKey is { } key && context.Request.Headers.Authorization.ToString() != $"Bearer {key}")
            {
                await JsonAsync(context, 401, Error("Incorrect API key provided: sk-wr***ng. You can find your API key at https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key"));
                return;
            }

            await next(context);
        });

        app.MapGet("/v1/models", (HttpContext c) => JsonAsync(c, 200, new JsonObject
        {
            ["object"] = "list",
            ["data"] = new JsonArray(
                new JsonObject { ["id"] = Qwen, ["object"] = "model", ["created"] = Created, ["owned_by"] = "vllm", ["root"] = "Qwen/Qwen2.5-0.5B-Instruct", ["max_model_len"] = 32768 },
                new JsonObject { ["id"] = Llama, ["object"] = "model", ["created"] = Created, ["owned_by"] = "llamacpp" }),
        }));
        app.MapPost("/v1/chat/completions", (HttpContext c) => ReplyAsync(c, chat: true));
        app.MapPost("/v1/completions", (HttpContext c) => ReplyAsync(c, chat: false));
        app.MapPost("/v1/embeddings", async (HttpContext c) =>
        {
            // Qwen embeds (data in reverse order, as servers may send it); Llama answers as llama-server without --embeddings.
            var request = await BodyAsync(c);
            var model = (string?)request["model"];
            if (model == Llama)
            {
                await JsonAsync(c, 501, Error("This server does not support embeddings. Start it with `--embeddings`", "not_supported_error", 501));
                return;
            }

            if (model != Qwen)
            {
                await JsonAsync(c, 404, Error($"The model `{model}` does not exist.", "invalid_request_error", "model_not_found"));
                return;
            }

            var inputs = request["input"]!.AsArray().Select(i => (string)i!).ToList();
            var data = inputs.Select((text, i) => (JsonNode?)new JsonObject
            {
                ["object"] = "embedding",
                ["index"] = i,
                ["embedding"] = new JsonArray(EmbeddingOf(text).Select(v => (JsonNode?)v).ToArray()),
            }).Reverse().ToArray();
            await JsonAsync(c, 200, new JsonObject
            {
                ["object"] = "list",
                ["data"] = new JsonArray(data),
                ["model"] = model,
                ["usage"] = new JsonObject { ["prompt_tokens"] = 7, ["total_tokens"] = 7 },
            });
        });
    }

    private async Task ReplyAsync(HttpContext context, bool chat)
    {
        var request = await BodyAsync(context);
        if (!await DelayReplyAsync(context))
        {
            return;
        }

        var model = (string?)request["model"] ?? "";
        if (model is not (Qwen or Llama))
        {
            await JsonAsync(context, 404, Error($"The model `{model}` does not exist.", "NotFoundError", 404));
            return;
        }

        var tokens = chat ? ChatTokens : CompletionTokens;
        var limit = (int?)request["max_completion_tokens"] ?? (int?)request["max_tokens"];
        var cut = limit is { } n && n >= 0 && n < tokens.Length;
        var sent = cut ? tokens[..limit!.Value] : tokens;
        var finishReason = cut ? "length" : "stop";
        var usage = new JsonObject { ["prompt_tokens"] = PromptTokens, ["completion_tokens"] = sent.Length, ["total_tokens"] = PromptTokens + sent.Length };
        var id = chat ? "chatcmpl-fake0001" : "cmpl-fake0001";

        if ((bool?)request["stream"] != true)
        {
            await JsonAsync(context, 200, new JsonObject
            {
                ["id"] = id,
                ["object"] = chat ? "chat.completion" : "text_completion",
                ["created"] = Created,
                ["model"] = model,
                ["choices"] = new JsonArray(chat
                    ? new JsonObject { ["index"] = 0, ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = string.Concat(sent) }, ["logprobs"] = null, ["finish_reason"] = finishReason }
                    : new JsonObject { ["index"] = 0, ["text"] = string.Concat(sent), ["logprobs"] = null, ["finish_reason"] = finishReason }),
                ["usage"] = usage,
            });
            return;
        }

        context.Response.StatusCode = 200;
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        var objectName = chat ? "chat.completion.chunk" : "text_completion";

        JsonObject Chunk(JsonNode? choice) => new()
        {
            ["id"] = id,
            ["object"] = objectName,
            ["created"] = Created,
            ["model"] = model,
            ["choices"] = choice is null ? new JsonArray() : new JsonArray(choice),
        };

        JsonObject Choice(string? text, string? finish) => chat
            ? new JsonObject { ["index"] = 0, ["delta"] = text is null ? new JsonObject() : new JsonObject { ["content"] = text }, ["logprobs"] = null, ["finish_reason"] = finish }
            : new JsonObject { ["index"] = 0, ["text"] = text ?? "", ["logprobs"] = null, ["finish_reason"] = finish };

        var events = new List<JsonObject>();
        if (chat)
        {
            events.Add(Chunk(new JsonObject { ["index"] = 0, ["delta"] = new JsonObject { ["role"] = "assistant", ["content"] = "" }, ["logprobs"] = null, ["finish_reason"] = null }));
        }

        events.AddRange(sent.Select(token => Chunk(Choice(token, null))));
        events.Add(Chunk(Choice(null, finishReason)));
        if (HonorIncludeUsage && (bool?)request["stream_options"]?["include_usage"] == true)
        {
            var usageChunk = Chunk(null);
            usageChunk["usage"] = usage;
            events.Add(usageChunk);
        }

        var textEvents = 0;
        foreach (var item in events)
        {
            if (!await WriteChunkAsync(context, $"data: {item.ToJsonString()}\n\n"))
            {
                return;
            }

            var choices = item["choices"]!.AsArray();
            var hasText = choices.Count > 0
                && (chat ? (string?)choices[0]!["delta"]?["content"] : (string?)choices[0]!["text"]) is { Length: > 0 };
            if (hasText && ++textEvents == 1 && ErrorEventAfterFirstChunk is { } error)
            {
                await WriteChunkAsync(context, $"data: {Error(error, "InternalServerError", 500).ToJsonString()}\n\n");
                return;
            }
        }

        await WriteChunkAsync(context, "data: [DONE]\n\n");
    }

    private static JsonObject Error(string message, string type, JsonNode code) => new()
    {
        ["error"] = new JsonObject { ["message"] = message, ["type"] = type, ["param"] = null, ["code"] = code },
    };
}

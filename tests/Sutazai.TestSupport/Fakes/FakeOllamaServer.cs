using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Sutazai.Inference.Tests.Fakes;

/// <summary>
/// Speaks Ollama's REST API (0.5.x wire format): <c>/</c>, <c>/api/version</c>, <c>/api/tags</c>, <c>/api/ps</c>,
/// <c>/api/show</c>, and NDJSON streams for <c>/api/chat</c> and <c>/api/generate</c> whose last object is
/// <c>done: true</c> with <c>done_reason</c> and the token counts. Replies are deterministic: the fixed tokens below,
/// cut to <c>options.num_predict</c> (then <c>done_reason: "length"</c>).
/// </summary>
public sealed class FakeOllamaServer : FakeServer
{
    public const string Version = "0.5.7";
    public const string Llama = "llama3.2:1b";
    public const string Qwen = "qwen2.5:0.5b";
    public const int PromptEvalCount = 12;
    public const string CreatedAt = "2025-01-15T10:20:30.123456789Z";

    public static readonly string[] ChatTokens = ["Hello", " from", " llama"];
    public static readonly string[] GenerateTokens = [" jumps", " over", " the", " lazy", " dog"];

    private FakeOllamaServer()
    {
    }

    /// <summary>When set, every <c>/api/*</c> request fails with this status and an Ollama error body.</summary>
    public int? FailWithStatus { get; set; }

    public string FailureMessage { get; set; } = "llama runner process has terminated: signal: killed";

    /// <summary>When set, a stream sends one chunk, then <c>{"error": ...}</c>, then ends (as Ollama does on a runner crash).</summary>
    public string? ErrorLineAfterFirstChunk { get; set; }

    /// <summary>When true, a stream sends its tokens and ends without the <c>done</c> object.</summary>
    public bool OmitDone { get; set; }

    /// <summary>The fake's embedding of a text: its length, its first character's code and 0.5.</summary>
    public static float[] EmbeddingOf(string text) => [text.Length, text.Length > 0 ? text[0] : 0, 0.5f];

    public static async Task<FakeOllamaServer> StartNewAsync()
    {
        var server = new FakeOllamaServer();
        await server.StartAsync();
        return server;
    }

    protected override void Map(WebApplication app)
    {
        app.Use(async (context, next) =>
        {
            if (FailWithStatus is { } status && context.Request.Path.StartsWithSegments("/api"))
            {
                await JsonAsync(context, status, new JsonObject { ["error"] = FailureMessage });
                return;
            }

            await next(context);
        });

        app.MapGet("/", () => "Ollama is running");
        app.MapPost("/api/pull", async (HttpContext c) =>
        {
            // Ollama's pull progress: one NDJSON object per step, layer byte counts, then "success".
            c.Response.ContentType = "application/x-ndjson";
            string[] lines =
            [
                "{\"status\":\"pulling manifest\"}",
                "{\"status\":\"pulling 74701a8c35f6\",\"digest\":\"sha256:74701a8c35f6\",\"total\":1000,\"completed\":400}",
                "{\"status\":\"pulling 74701a8c35f6\",\"digest\":\"sha256:74701a8c35f6\",\"total\":1000,\"completed\":1000}",
                "{\"status\":\"verifying sha256 digest\"}",
                "{\"status\":\"success\"}",
            ];
            // Each line flushed on its own, and HoldAfterFirstChunk can hold the stream after any of them.
            foreach (var line in lines)
            {
                if (!await WriteChunkAsync(c, line + "\n")) return;
            }
        });
        app.MapGet("/api/version", (HttpContext c) => JsonAsync(c, 200, new JsonObject { ["version"] = Version }));
        app.MapGet("/api/tags", (HttpContext c) => JsonAsync(c, 200, new JsonObject
        {
            ["models"] = new JsonArray(
                Model(Llama, 1321098329, "llama", "1.2B", "Q8_0"),
                Model(Qwen, 397821319, "qwen2", "494.03M", "Q4_K_M")),
        }));
        app.MapGet("/api/ps", (HttpContext c) =>
        {
            var running = Model(Llama, 2019393189, "llama", "1.2B", "Q8_0");
            running["expires_at"] = "2025-01-15T10:25:30.123456789Z";
            running["size_vram"] = 2019393189;
            return JsonAsync(c, 200, new JsonObject { ["models"] = new JsonArray(running) });
        });
        app.MapPost("/api/show", async (HttpContext c) =>
        {
            var model = (string?)(await BodyAsync(c))["model"];
            JsonObject? info = model switch
            {
                Llama => new JsonObject { ["general.architecture"] = "llama", ["general.parameter_count"] = 1235814432, ["llama.context_length"] = 131072, ["llama.embedding_length"] = 2048 },
                Qwen => new JsonObject { ["general.architecture"] = "qwen2", ["qwen2.block_count"] = 24, ["qwen2.context_length"] = 32768 },
                _ => null,
            };
            if (info is null)
            {
                await JsonAsync(c, 404, new JsonObject { ["error"] = $"model '{model}' not found" });
                return;
            }

            await JsonAsync(c, 200, new JsonObject
            {
                ["modelfile"] = "# Modelfile generated by \"ollama show\"",
                ["parameters"] = "stop \"<|eot_id|>\"",
                ["template"] = "{{ .Prompt }}",
                ["details"] = new JsonObject { ["format"] = "gguf", ["family"] = (string?)info["general.architecture"] },
                ["model_info"] = info,
                ["capabilities"] = new JsonArray("completion"),
            });
        });
        app.MapPost("/api/embed", async (HttpContext c) =>
        {
            // Llama embeds; Qwen answers as Ollama does for a model without embeddings; anything else is not pulled.
            var request = await BodyAsync(c);
            var model = (string?)request["model"];
            if (model == Qwen)
            {
                await JsonAsync(c, 400, new JsonObject { ["error"] = $"\"{Qwen}\" does not support embeddings" });
                return;
            }

            if (model != Llama)
            {
                await JsonAsync(c, 404, new JsonObject { ["error"] = $"model \"{model}\" not found, try pulling it first" });
                return;
            }

            var inputs = request["input"]!.AsArray().Select(i => (string)i!).ToList();
            await JsonAsync(c, 200, new JsonObject
            {
                ["model"] = model,
                ["embeddings"] = new JsonArray(inputs.Select(i => (JsonNode?)new JsonArray(EmbeddingOf(i).Select(v => (JsonNode?)v).ToArray())).ToArray()),
                ["prompt_eval_count"] = inputs.Sum(i => i.Length),
            });
        });
        app.MapPost("/api/chat", (HttpContext c) => ReplyAsync(c, chat: true));
        app.MapPost("/api/generate", (HttpContext c) => ReplyAsync(c, chat: false));
    }

    private async Task ReplyAsync(HttpContext context, bool chat)
    {
        var request = await BodyAsync(context);
        if (!await DelayReplyAsync(context))
        {
            return;
        }

        var model = (string?)request["model"] ?? "";
        if (model is not (Llama or Qwen))
        {
            await JsonAsync(context, 404, new JsonObject { ["error"] = $"model \"{model}\" not found, try pulling it first" });
            return;
        }

        var tokens = chat ? ChatTokens : GenerateTokens;
        var limit = (int?)request["options"]?["num_predict"];
        var cut = limit is { } n && n >= 0 && n < tokens.Length;
        var sent = cut ? tokens[..limit!.Value] : tokens;
        var doneReason = cut ? "length" : "stop";
        var stream = (bool?)request["stream"] ?? true;

        if (!stream)
        {
            await JsonAsync(context, 200, Done(model, chat, string.Concat(sent), doneReason, sent.Length));
            return;
        }

        context.Response.StatusCode = 200;
        context.Response.ContentType = "application/x-ndjson";
        foreach (var token in sent)
        {
            var chunk = new JsonObject { ["model"] = model, ["created_at"] = CreatedAt };
            if (chat)
            {
                chunk["message"] = new JsonObject { ["role"] = "assistant", ["content"] = token };
            }
            else
            {
                chunk["response"] = token;
            }

            chunk["done"] = false;
            if (!await WriteChunkAsync(context, chunk.ToJsonString() + "\n"))
            {
                return;
            }

            if (ErrorLineAfterFirstChunk is { } error)
            {
                await WriteChunkAsync(context, new JsonObject { ["error"] = error }.ToJsonString() + "\n");
                return;
            }
        }

        if (!OmitDone)
        {
            await WriteChunkAsync(context, Done(model, chat, "", doneReason, sent.Length).ToJsonString() + "\n");
        }
    }

    private static JsonObject Done(string model, bool chat, string text, string doneReason, int evalCount)
    {
        var done = new JsonObject { ["model"] = model, ["created_at"] = CreatedAt };
        if (chat)
        {
            done["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text };
        }
        else
        {
            done["response"] = text;
        }

        done["done_reason"] = doneReason;
        done["done"] = true;
        if (!chat)
        {
            done["context"] = new JsonArray(128006, 882, 128007);
        }

        done["total_duration"] = 5589157167;
        done["load_duration"] = 3013701500;
        done["prompt_eval_count"] = PromptEvalCount;
        done["prompt_eval_duration"] = 130079000;
        done["eval_count"] = evalCount;
        done["eval_duration"] = 1325948000;
        return done;
    }

    private static JsonObject Model(string name, long size, string family, string parameterSize, string quantization) => new()
    {
        ["name"] = name,
        ["model"] = name,
        ["modified_at"] = "2025-01-10T08:00:00.000000000Z",
        ["size"] = size,
        ["digest"] = "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
        ["details"] = new JsonObject
        {
            ["parent_model"] = "",
            ["format"] = "gguf",
            ["family"] = family,
            ["families"] = new JsonArray(family),
            ["parameter_size"] = parameterSize,
            ["quantization_level"] = quantization,
        },
    };
}

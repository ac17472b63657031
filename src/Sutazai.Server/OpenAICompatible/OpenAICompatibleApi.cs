using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.Extensions.Options;
using Sutazai.Inference;
using Sutazai.Inference.LlamaCpp;
using Sutazai.Server.Hosting;
using Sutazai.Server.Identity;
using Sutazai.Server.Inference;

namespace Sutazai.Server.OpenAICompatible;

/// <summary>
/// The OpenAI-compatible API under <c>/v1</c>: models, chat completions, legacy completions and embeddings, in
/// OpenAI's wire format (snake_case, SSE chunks, <c>{"error": …}</c> errors), authenticated by an API key or a JWT.
/// Generation goes through <see cref="GenerationRunner"/>, so validation ranges and behaviour match /api/v1/generate.
/// </summary>
public static class OpenAICompatibleApi
{

    public static WebApplicationBuilder AddSutazaiOpenAICompatible(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<IAuthorizationMiddlewareResultHandler, OpenAIAuthorizationResultHandler>();
        return builder;
    }

    public static IEndpointRouteBuilder MapOpenAICompatibleApi(this IEndpointRouteBuilder routes)
    {
        var v1 = routes.MapGroup("/v1").WithTags("OpenAI-compatible").RequireAuthorization(ScopePolicies.Inference)
            .WithMetadata(OpenAIEndpointMetadata.Instance);
        v1.MapGet("/models", ListModels).WithSummary("Every available model, in OpenAI's list format.");
        v1.MapPost("/chat/completions", ChatCompletions).Accepts<ChatCompletionRequest>("application/json").RequireRateLimiting(ServiceDefaults.ExpensiveRateLimitPolicy)
            .WithSummary("OpenAI chat completion; SSE chunks with \"stream\": true.");
        v1.MapPost("/completions", Completions).Accepts<CompletionRequest>("application/json").RequireRateLimiting(ServiceDefaults.ExpensiveRateLimitPolicy)
            .WithSummary("OpenAI legacy text completion of a raw prompt; SSE chunks with \"stream\": true.");
        v1.MapPost("/embeddings", Embeddings).Accepts<EmbeddingsRequest>("application/json").RequireRateLimiting(ServiceDefaults.ExpensiveRateLimitPolicy)
            .WithSummary("OpenAI embeddings of a string or an array of strings.");
        // Any other /v1 path (or method) answers as OpenAI does, rather than with a problem document.
        v1.MapFallback("{**path}", Fallback).ExcludeFromDescription();
        return routes;
    }

    /// <summary>
    /// Routing falls back here also when a /v1 route exists but rejects the request's media type (the fallback
    /// outranks routing's own 415 answer), so that is told apart from an unknown URL.
    /// </summary>
    private static IResult Fallback(HttpContext http, EndpointDataSource endpoints)
    {
        var path = http.Request.Path.Value?.TrimEnd('/') ?? "";
        var routes = endpoints.Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.Metadata.GetMetadata<OpenAIEndpointMetadata>() is not null && e.RoutePattern.Parameters.Count == 0
                && string.Equals("/" + e.RoutePattern.RawText?.Trim('/'), path, StringComparison.OrdinalIgnoreCase))
            .ToList();
        var methods = routes.SelectMany(e => e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? []).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        // A wrong method is "Invalid URL", as OpenAI answers it.
        if (!methods.Contains(http.Request.Method, StringComparer.OrdinalIgnoreCase))
            return OpenAIErrors.Result(StatusCodes.Status404NotFound, $"Invalid URL ({http.Request.Method} {http.Request.Path}).", OpenAIErrors.InvalidRequest);
        return OpenAIErrors.Result(StatusCodes.Status415UnsupportedMediaType,
            Hosting.JsonInput.ContentTypeProblem(http.Request.ContentType) ?? $"This endpoint does not read '{http.Request.ContentType}' bodies.",
            OpenAIErrors.InvalidRequest, code: "unsupported_media_type");
    }

    private static async Task<IResult> ListModels(ModelCatalog catalog, LlamaCppProvider llama, CancellationToken ct)
    {
        var listing = await catalog.ListAsync(ct);
        var files = llama.ListFiles().ToDictionary(f => f.Id, f => f.Path, StringComparer.Ordinal);
        var data = listing.Models.Select(m => new ModelEntry(m.Id, "model",
            m.Provider == LlamaCppProvider.ProviderName && files.TryGetValue(m.Id, out var path)
                ? new DateTimeOffset(File.GetLastWriteTimeUtc(path)).ToUnixTimeSeconds()
                : 0,
            m.Provider)).ToList();
        return TypedResults.Json(new ModelList("list", data), OpenAIJson.Options);
    }

    // ---- chat ----

    private static async Task<IResult> ChatCompletions(HttpContext http, GenerationRunner runner, TimeProvider time)
    {
        var (request, parseError) = await ReadAsync<ChatCompletionRequest>(http);
        if (parseError is not null) return parseError;

        var problems = new List<(string Param, string Message)>();
        if (request!.Messages is null) problems.Add(("messages", "'messages' is required."));
        var messages = new List<GenerateMessage>();
        for (var i = 0; i < (request.Messages?.Count ?? 0); i++)
        {
            var m = request.Messages![i];
            var role = m?.Role == "developer" ? "system" : m?.Role;
            if (role is "tool" or "function") problems.Add(($"messages[{i}].role", $"Role '{role}' is not supported: this server does not call tools."));
            messages.Add(new GenerateMessage(role, ContentText(m?.Content, $"messages[{i}].content", problems)));
        }
        CheckCommon(request.N, request.Stop, problems, out var stop);
        if (request.Tools is { ValueKind: JsonValueKind.Array } tools && tools.GetArrayLength() > 0)
            problems.Add(("tools", "Tool calling is not supported by this server."));
        if (request.Logprobs == true) problems.Add(("logprobs", "Log probabilities are not supported by this server."));
        if (problems.Count > 0) return BadRequest(problems);

        var maxTokensParam = request.MaxCompletionTokens is not null ? "max_completion_tokens" : "max_tokens";
        var generate = new GenerateRequest(NullIfEmpty(request.Model), null, messages,
            new GenerateOptions(request.Temperature, request.TopP, request.TopK, request.Seed, request.MaxCompletionTokens ?? request.MaxTokens, stop),
            request.Stream);
        if (ValidationError(runner.Validate(generate), "messages", maxTokensParam) is { } invalid) return invalid;

        var id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        var includeUsage = request.StreamOptions?.IncludeUsage == true;
        return await RunAsync(http, runner, generate, async (run, text, hasFirst) =>
        {
            var ct = http.RequestAborted;
            if (request.Stream != true)
            {
                var all = await CollectAsync(text, hasFirst);
                return TypedResults.Json(new ChatCompletionResponse(id, "chat.completion", created, run.Model.ModelId,
                    [new ChatChoice(0, new ChatMessageOut("assistant", all), null, run.FinishReasonName())], Usage(run)), OpenAIJson.Options);
            }

            var sse = new OpenAIEventStream(http.Response);
            ChatCompletionChunk Chunk(ChatDelta delta, string? finish) =>
                new(id, "chat.completion.chunk", created, run.Model.ModelId, [new ChatChunkChoice(0, delta, null, finish)], null);
            await sse.WriteAsync(Chunk(new ChatDelta("assistant", ""), null), ct);
            if (!await StreamTextAsync(sse, text, hasFirst, piece => Chunk(new ChatDelta(null, piece), null), ct)) return Results.Empty;
            await sse.WriteAsync(Chunk(new ChatDelta(null, null), run.FinishReasonName()), ct);
            if (includeUsage) await sse.WriteAsync(new ChatCompletionChunk(id, "chat.completion.chunk", created, run.Model.ModelId, [], Usage(run)), ct);
            await sse.DoneAsync(ct);
            return Results.Empty;
        });
    }

    // ---- legacy completions ----

    private static async Task<IResult> Completions(HttpContext http, GenerationRunner runner, TimeProvider time)
    {
        var (request, parseError) = await ReadAsync<CompletionRequest>(http);
        if (parseError is not null) return parseError;

        var problems = new List<(string Param, string Message)>();
        string? prompt = null;
        switch (request!.Prompt)
        {
            case null or { ValueKind: JsonValueKind.Null }:
                problems.Add(("prompt", "'prompt' is required."));
                break;
            case { ValueKind: JsonValueKind.String } s:
                prompt = s.GetString();
                break;
            case { ValueKind: JsonValueKind.Array } a when a.GetArrayLength() == 1 && a[0].ValueKind == JsonValueKind.String:
                prompt = a[0].GetString();
                break;
            default:
                problems.Add(("prompt", "'prompt' must be a string (or an array holding one string); token arrays and batches are not supported."));
                break;
        }
        CheckCommon(request.N, request.Stop, problems, out var stop);
        if (request.Echo == true) problems.Add(("echo", "'echo' is not supported by this server."));
        if (request.Logprobs is not null) problems.Add(("logprobs", "Log probabilities are not supported by this server."));
        if (problems.Count > 0) return BadRequest(problems);

        var generate = new GenerateRequest(NullIfEmpty(request.Model), prompt, null,
            new GenerateOptions(request.Temperature, request.TopP, request.TopK, request.Seed, request.MaxTokens, stop), request.Stream);
        if (ValidationError(runner.Validate(generate), "prompt", "max_tokens") is { } invalid) return invalid;

        var id = "cmpl-" + Guid.NewGuid().ToString("N");
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        var includeUsage = request.StreamOptions?.IncludeUsage == true;
        return await RunAsync(http, runner, generate, async (run, text, hasFirst) =>
        {
            var ct = http.RequestAborted;
            if (request.Stream != true)
            {
                var all = await CollectAsync(text, hasFirst);
                return TypedResults.Json(new TextCompletionResponse(id, "text_completion", created, run.Model.ModelId,
                    [new TextChoice(all, 0, null, run.FinishReasonName())], Usage(run)), OpenAIJson.Options);
            }

            var sse = new OpenAIEventStream(http.Response);
            TextCompletionResponse Chunk(string piece, string? finish) =>
                new(id, "text_completion", created, run.Model.ModelId, [new TextChoice(piece, 0, null, finish)], null);
            if (!await StreamTextAsync(sse, text, hasFirst, piece => Chunk(piece, null), ct)) return Results.Empty;
            await sse.WriteAsync(Chunk("", run.FinishReasonName()), ct);
            if (includeUsage) await sse.WriteAsync(new TextCompletionResponse(id, "text_completion", created, run.Model.ModelId, [], Usage(run)), ct);
            await sse.DoneAsync(ct);
            return Results.Empty;
        });
    }

    // ---- embeddings ----

    private static async Task<IResult> Embeddings(HttpContext http, ModelCatalog catalog, IOptionsMonitor<InferenceOptions> inference)
    {
        var ct = http.RequestAborted;
        var (request, parseError) = await ReadAsync<EmbeddingsRequest>(http);
        if (parseError is not null) return parseError;

        var inputs = new List<string>();
        switch (request!.Input)
        {
            case null or { ValueKind: JsonValueKind.Null }:
                return OpenAIErrors.BadRequest("'input' is required.", "input");
            case { ValueKind: JsonValueKind.String } s:
                inputs.Add(s.GetString()!);
                break;
            case { ValueKind: JsonValueKind.Array } a when a.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String):
                inputs.AddRange(a.EnumerateArray().Select(e => e.GetString()!));
                break;
            default:
                return OpenAIErrors.BadRequest("'input' must be a string or an array of strings; token arrays are not supported.", "input");
        }
        if (inputs.Count == 0) return OpenAIErrors.BadRequest("'input' must not be an empty array.", "input");
        var limits = inference.CurrentValue;
        if (inputs.Count > limits.MaxEmbeddingInputs) return OpenAIErrors.BadRequest($"'input' may hold at most {limits.MaxEmbeddingInputs} strings (Sutazai:Inference:MaxEmbeddingInputs).", "input");
        var empty = inputs.FindIndex(string.IsNullOrEmpty);
        if (empty >= 0) return OpenAIErrors.BadRequest($"'input[{empty}]' is empty; every input must have text.", $"input[{empty}]");
        var tooLong = inputs.FindIndex(i => i.Length > limits.MaxEmbeddingInputChars);
        if (tooLong >= 0)
            return OpenAIErrors.BadRequest($"'input[{tooLong}]' is {inputs[tooLong].Length} characters; the limit is {limits.MaxEmbeddingInputChars} (Sutazai:Inference:MaxEmbeddingInputChars).", $"input[{tooLong}]");
        var base64 = request.EncodingFormat switch
        {
            null or "float" => false,
            "base64" => true,
            _ => (bool?)null,
        };
        if (base64 is null) return OpenAIErrors.BadRequest("'encoding_format' must be 'float' or 'base64'.", "encoding_format");
        if (request.Dimensions is <= 0) return OpenAIErrors.BadRequest("'dimensions' must be positive.", "dimensions");

        EmbeddingResult result;
        ResolvedModel model;
        try
        {
            model = await catalog.ResolveAsync(NullIfEmpty(request.Model), ct);
            if (model.Provider is not IEmbeddingProvider embedder)
                return OpenAIErrors.BadRequest($"Model '{model.ModelId}' is served by '{model.Provider.Name}', which does not produce embeddings.", "model", "embeddings_not_supported");
            result = await embedder.EmbedAsync(model.ModelId, inputs, ct);
        }
        catch (Exception ex) when (OpenAIErrors.FromException(ex) is { } error)
        {
            return error;
        }

        var width = result.Embeddings.Count > 0 ? result.Embeddings[0].Length : 0;
        if (request.Dimensions is { } dimensions && dimensions != width)
            return OpenAIErrors.BadRequest($"Model '{model.ModelId}' produces {width}-dimensional embeddings and cannot shorten them; omit 'dimensions' or pass {width}.", "dimensions");
        var data = result.Embeddings.Select((vector, i) => new EmbeddingEntry("embedding", i,
            base64 == true ? Convert.ToBase64String(MemoryMarshal.AsBytes(vector.AsSpan())) : vector)).ToList();
        return TypedResults.Json(new EmbeddingList("list", data, model.ModelId, new EmbeddingUsage(result.InputTokens, result.InputTokens)), OpenAIJson.Options);
    }

    // ---- shared ----

    private static async Task<(T? Request, IResult? Error)> ReadAsync<T>(HttpContext http) where T : class
    {
        // Parse first, then bind: a syntax error and a field of the wrong type get different answers.
        JsonDocument document;
        try
        {
            document = await JsonDocument.ParseAsync(http.Request.Body, cancellationToken: http.RequestAborted);
        }
        catch (JsonException ex)
        {
            return (null, OpenAIErrors.MalformedJson(ex, syntax: true));
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                return (null, OpenAIErrors.BadRequest("The request body must be a JSON object.", null, "invalid_json"));
            try
            {
                return (document.RootElement.Deserialize<T>(OpenAIJson.Options), null);
            }
            catch (JsonException ex)
            {
                return (null, OpenAIErrors.MalformedJson(ex, syntax: false));
            }
        }
    }

    /// <summary>Text of a message's content: a string, or an array of <c>{"type": "text", "text": …}</c> parts.</summary>
    private static string? ContentText(JsonElement? content, string param, List<(string, string)> problems)
    {
        switch (content)
        {
            case null or { ValueKind: JsonValueKind.Null }:
                return null;
            case { ValueKind: JsonValueKind.String } s:
                return s.GetString();
            case { ValueKind: JsonValueKind.Array } parts:
                var texts = new List<string>();
                foreach (var part in parts.EnumerateArray())
                {
                    if (part.ValueKind == JsonValueKind.Object && part.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String
                        && type.GetString() == "text" && part.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String)
                    {
                        texts.Add(text.GetString()!);
                        continue;
                    }
                    problems.Add((param, "Only text content parts ({\"type\": \"text\", \"text\": …}) are supported."));
                    return null;
                }
                return string.Join("\n", texts);
            default:
                problems.Add((param, "Content must be a string or an array of text parts."));
                return null;
        }
    }

    private static void CheckCommon(int? n, JsonElement? stopElement, List<(string, string)> problems, out List<string>? stop)
    {
        if (n is not null and not 1) problems.Add(("n", "Only n=1 is supported: this server returns one choice per request."));
        stop = null;
        switch (stopElement)
        {
            case null or { ValueKind: JsonValueKind.Null }:
                break;
            case { ValueKind: JsonValueKind.String } s:
                stop = [s.GetString()!];
                break;
            case { ValueKind: JsonValueKind.Array } a when a.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String):
                stop = a.EnumerateArray().Select(e => e.GetString()!).ToList();
                break;
            default:
                problems.Add(("stop", "'stop' must be a string or an array of strings."));
                break;
        }
    }

    private static IResult BadRequest(List<(string Param, string Message)> problems) =>
        OpenAIErrors.BadRequest(string.Join(" ", problems.Select(p => p.Message).Distinct()), problems[0].Param);

    /// <summary>Maps <see cref="GenerationRunner.Validate"/>'s field names to OpenAI's parameter names.</summary>
    private static IResult? ValidationError(Dictionary<string, string[]> errors, string inputParam, string maxTokensParam)
    {
        if (errors.Count == 0) return null;
        var (field, messages) = errors.First();
        var param = field switch
        {
            "prompt" => inputParam,
            "options.temperature" => "temperature",
            "options.topP" => "top_p",
            "options.topK" => "top_k",
            "options.seed" => "seed",
            "options.maxTokens" => maxTokensParam,
            "options.stop" => "stop",
            _ => field,
        };
        var message = string.Join(" ", messages)
            .Replace("maxTokens", maxTokensParam, StringComparison.Ordinal)
            .Replace("topP", "top_p", StringComparison.Ordinal)
            .Replace("topK", "top_k", StringComparison.Ordinal);
        return OpenAIErrors.BadRequest($"Invalid '{param}': {message}", param, "invalid_value");
    }

    /// <summary>
    /// Starts the generation and reads its first piece before answering, so a missing model or a backend that is down
    /// still gets a proper status; then hands over to <paramref name="respond"/>. The request's abort token cancels it.
    /// </summary>
    private static async Task<IResult> RunAsync(HttpContext http, GenerationRunner runner, GenerateRequest request,
        Func<GenerationRunner.Run, IAsyncEnumerator<string>, bool, Task<IResult>> respond)
    {
        var ct = http.RequestAborted;
        var limiter = http.RequestServices.GetRequiredService<GenerationLimiter>();
        using var slot = limiter.TryAcquire(http.User.UserId());
        if (slot is null)
        {
            http.Response.Headers.RetryAfter = GenerationLimiter.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return OpenAIErrors.Result(StatusCodes.Status429TooManyRequests, limiter.LimitDetail, OpenAIErrors.RateLimit, null, "rate_limit_exceeded");
        }
        GenerationRunner.Run run;
        IAsyncEnumerator<string> text;
        bool hasFirst;
        try
        {
            run = await runner.StartAsync(request, ct);
            text = run.TextAsync(ct).GetAsyncEnumerator(ct);
        }
        catch (Exception ex) when (OpenAIErrors.FromException(ex) is { } error)
        {
            return error;
        }
        try
        {
            try
            {
                hasFirst = await text.MoveNextAsync();
            }
            catch (Exception ex) when (OpenAIErrors.FromException(ex) is { } error)
            {
                return error;
            }
            return await respond(run, text, hasFirst);
        }
        finally
        {
            await text.DisposeAsync();
        }
    }

    private static async Task<string> CollectAsync(IAsyncEnumerator<string> text, bool hasFirst)
    {
        var all = new StringBuilder();
        if (hasFirst)
        {
            all.Append(text.Current);
            while (await text.MoveNextAsync()) all.Append(text.Current);
        }
        return all.ToString();
    }

    /// <summary>
    /// One chunk per text piece. A failure after the stream began ends it with an OpenAI error event (and no
    /// <c>[DONE]</c>), as OpenAI does; returns false then.
    /// </summary>
    private static async Task<bool> StreamTextAsync<T>(OpenAIEventStream sse, IAsyncEnumerator<string> text, bool hasFirst, Func<string, T> chunk, CancellationToken ct)
    {
        if (!hasFirst) return true;
        await sse.WriteAsync(chunk(text.Current), ct);
        while (true)
        {
            try
            {
                if (!await text.MoveNextAsync()) return true;
            }
            catch (Exception ex) when (ex is InferenceUnavailableException or ModelNotFoundException && !ct.IsCancellationRequested)
            {
                await sse.WriteAsync(new OpenAIErrorBody(new OpenAIError(ex.Message, OpenAIErrors.Server, null, "service_unavailable")), ct);
                return false;
            }
            await sse.WriteAsync(chunk(text.Current), ct);
        }
    }

    private static OpenAIUsage Usage(GenerationRunner.Run run)
    {
        var usage = run.UsageResponse();
        return new OpenAIUsage(usage.PromptTokens, usage.CompletionTokens, usage.TotalTokens, new PromptTokensDetails(usage.CachedPromptTokens));
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}

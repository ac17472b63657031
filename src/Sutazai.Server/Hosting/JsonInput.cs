using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Net.Http.Headers;

namespace Sutazai.Server.Hosting;

/// <summary>
/// The one gate every JSON body and socket frame passes before a handler sees it: a JSON media type in UTF-8
/// (else 415), then text that is valid UTF-8, well-formed JSON no deeper than <see cref="MaxDepth"/>, and whose strings
/// hold no lone UTF-16 surrogate (else 400 naming what is wrong). A handler therefore never sees a half-parsed body,
/// and nothing downstream (a tokenizer, the database) meets text it cannot encode.
/// </summary>
public static class JsonInput
{
    public const int MaxDepth = 64;

    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = MaxDepth, CommentHandling = JsonCommentHandling.Disallow };

    /// <summary>Why <paramref name="utf8"/> is not acceptable JSON, or null when it is; <paramref name="what"/> names it.</summary>
    public static string? Problem(ReadOnlySpan<byte> utf8, string what = "The request body")
    {
        utf8 = utf8[BomLength(utf8)..];
        if (!System.Text.Unicode.Utf8.IsValid(utf8))
            return $"{what} is not valid UTF-8 (the first invalid byte is at offset {FirstInvalidByte(utf8)}).";
        var reader = new Utf8JsonReader(utf8, ReaderOptions);
        try
        {
            while (reader.Read())
            {
                // Escapes are the only way to spell a lone surrogate in valid UTF-8; unescaping throws on one.
                if (reader.TokenType is JsonTokenType.String or JsonTokenType.PropertyName && reader.ValueIsEscaped)
                    _ = reader.GetString();
            }
            return null;
        }
        catch (JsonException ex)
        {
            return ex.Message.Contains("maximum configured depth", StringComparison.Ordinal)
                ? $"{what} nests deeper than {MaxDepth} levels (at line {ex.LineNumber + 1})."
                : $"{what} is not valid JSON: {ex.Message}";
        }
        catch (InvalidOperationException ex)
        {
            return $"{what} holds a string (near byte {reader.TokenStartIndex}) that is not valid Unicode: {ex.Message}";
        }
    }

    /// <summary>The length of a leading UTF-8 byte order mark (allowed before JSON, as System.Text.Json's readers allow it), else 0.</summary>
    public static int BomLength(ReadOnlySpan<byte> utf8) => utf8.StartsWith(Encoding.UTF8.Preamble) ? Encoding.UTF8.Preamble.Length : 0;

    private static int FirstInvalidByte(ReadOnlySpan<byte> utf8)
    {
        var offset = 0;
        while (offset < utf8.Length)
        {
            if (System.Buffers.OperationStatus.Done != System.Text.Rune.DecodeFromUtf8(utf8[offset..], out _, out var consumed)) return offset;
            offset += consumed;
        }
        return offset;
    }

    /// <summary>Why a Content-Type is not JSON this server reads, or null when it is (application/json or */*+json, UTF-8).</summary>
    public static string? ContentTypeProblem(string? contentType)
    {
        if (string.IsNullOrWhiteSpace(contentType)) return "Send the body with Content-Type: application/json.";
        if (!MediaTypeHeaderValue.TryParse(contentType, out var media) || media.MediaType.Value is null)
            return "The Content-Type header is not a valid media type; send application/json.";
        if (!IsJsonMediaType(media))
            return $"This endpoint reads JSON; the body was sent as '{media.MediaType.Value}'. Send application/json.";
        var charset = media.Charset.Value?.Trim('"');
        if (charset is not null && !charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) && !charset.Equals("utf8", StringComparison.OrdinalIgnoreCase))
            return $"The body must be UTF-8; the Content-Type names charset '{charset}'.";
        return null;
    }

    private static bool IsJsonMediaType(MediaTypeHeaderValue media) =>
        media.Type.Equals("application", StringComparison.OrdinalIgnoreCase)
        && (media.SubType.Equals("json", StringComparison.OrdinalIgnoreCase) || media.Suffix.Equals("json", StringComparison.OrdinalIgnoreCase));

    private static bool IsJson(string type) =>
        MediaTypeHeaderValue.TryParse(type, out var media) && IsJsonMediaType(media);

    /// <summary>The endpoint routing selects when a route exists but declares other request media types (its
    /// content-type matcher policy); it answers a bare 415.</summary>
    private const string RoutingUnsupportedMediaType = "415 HTTP Unsupported Media Type";

    /// <summary>
    /// For endpoints that accept a JSON body: 415 for another or a malformed media type, 400 for a body that is not
    /// acceptable JSON; otherwise the handler reads the checked body from memory. A body in another type the endpoint
    /// also accepts (a form) passes untouched.
    /// </summary>
    public static IApplicationBuilder UseJsonInputGuard(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        var endpoint = context.GetEndpoint();
        if (endpoint?.DisplayName == RoutingUnsupportedMediaType)
        {
            // Routing already knows no endpoint reads this media type; say which type was sent and what to send.
            var sentType = context.Request.ContentType;
            await WriteProblemAsync(context, StatusCodes.Status415UnsupportedMediaType, "Unsupported Media Type",
                ContentTypeProblem(sentType) ?? $"This endpoint does not read '{sentType}' bodies.");
            return;
        }
        var accepts = endpoint?.Metadata.GetMetadata<IAcceptsMetadata>();
        var canHaveBody = context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? context.Request.ContentLength > 0;
        var hasBody = canHaveBody && context.Request.ContentLength != 0;
        var contentType = context.Request.ContentType;
        // An empty body is the handler's to judge, but a media type it names is still checked (a handler that
        // trusted it would fail to decode, say, charset="utf-16").
        if (accepts is null || !accepts.ContentTypes.Any(IsJson) || (!hasBody && contentType is null))
        {
            await next(context);
            return;
        }
        if (contentType is not null && MediaTypeHeaderValue.TryParse(contentType, out var sent) && !IsJsonMediaType(sent)
            && accepts.ContentTypes.Any(t => MediaTypeHeaderValue.TryParse(t, out var other) && sent.IsSubsetOf(other)))
        {
            await next(context);
            return;
        }
        if (ContentTypeProblem(contentType) is { } unsupported)
        {
            await WriteProblemAsync(context, StatusCodes.Status415UnsupportedMediaType, "Unsupported Media Type", unsupported);
            return;
        }
        if (!hasBody)
        {
            await next(context);
            return;
        }

        // Kestrel's MaxRequestBodySize still applies while this reads (413 through the exception handler).
        var buffer = new MemoryStream(context.Request.ContentLength is { } length and < int.MaxValue ? (int)length : 4096);
        await context.Request.Body.CopyToAsync(buffer, context.RequestAborted);
        if (Problem(buffer.GetBuffer().AsSpan(0, (int)buffer.Length)) is { } malformed)
        {
            await WriteProblemAsync(context, StatusCodes.Status400BadRequest, "Bad Request", malformed);
            return;
        }
        buffer.Position = 0;
        context.Request.Body = buffer;
        context.Request.ContentLength = buffer.Length;
        await next(context);
    });

    /// <summary>An error before any handler ran: ProblemDetails, or OpenAI's error shape on the /v1 endpoints.</summary>
    public static async Task WriteProblemAsync(HttpContext context, int status, string title, string detail)
    {
        if (OpenAICompatible.OpenAIEndpointMetadata.Applies(context))
        {
            var code = status switch
            {
                StatusCodes.Status415UnsupportedMediaType => "unsupported_media_type",
                StatusCodes.Status400BadRequest => "invalid_json",
                _ => null,
            };
            await OpenAICompatible.OpenAIErrors.WriteAsync(context, status, detail, code: code);
            return;
        }
        context.Response.StatusCode = status;
        await context.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = new ProblemDetails { Status = status, Title = title, Detail = detail },
        });
    }
}

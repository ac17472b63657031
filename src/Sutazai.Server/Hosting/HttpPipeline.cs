using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using Sutazai.Server.Configuration;

namespace Sutazai.Server.Hosting;

/// <summary>Request id, security headers and the body size limit: small middlewares every request passes.</summary>
public static partial class HttpPipeline
{
    public const string RequestIdHeader = "X-Request-ID";

    /// <summary>API answers never render; UI pages get a policy that allows only this origin.</summary>
    public const string ApiContentSecurityPolicy = "default-src 'none'; frame-ancestors 'none'";
    public const string PageContentSecurityPolicy =
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
        "font-src 'self' data:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

    [GeneratedRegex("^[A-Za-z0-9._:-]{1,128}$")]
    private static partial Regex SafeRequestId();

    /// <summary>Echoes a well-formed X-Request-ID or makes one, and uses it as the trace identifier in logs.</summary>
    public static IApplicationBuilder UseRequestId(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        var incoming = context.Request.Headers[RequestIdHeader].ToString();
        var id = SafeRequestId().IsMatch(incoming) ? incoming : Guid.NewGuid().ToString("N");
        context.TraceIdentifier = id;
        context.Response.Headers[RequestIdHeader] = id;
        var logger = context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("Sutazai.Requests");
        using (logger.BeginScope(new Dictionary<string, object> { ["RequestId"] = id }))
        {
            await next(context);
        }
    });

    public static IApplicationBuilder UseSecurityHeaders(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        var hsts = context.RequestServices.GetRequiredService<IOptions<SutazaiOptions>>().Value.HasHttpsPublicUrl;
        context.Response.OnStarting(() =>
        {
            var headers = context.Response.Headers;
            headers.XContentTypeOptions = "nosniff";
            headers.XFrameOptions = "DENY";
            headers["Referrer-Policy"] = "strict-origin-when-cross-origin";
            headers["Cross-Origin-Opener-Policy"] = "same-origin";
            headers["Permissions-Policy"] = "camera=(), geolocation=(), payment=()";
            if (hsts) headers.StrictTransportSecurity = "max-age=31536000; includeSubDomains";
            if (!headers.ContainsKey("Content-Security-Policy"))
            {
                var isPage = context.Response.ContentType?.StartsWith("text/html", StringComparison.OrdinalIgnoreCase) == true;
                headers.ContentSecurityPolicy = isPage ? PageContentSecurityPolicy : ApiContentSecurityPolicy;
            }
            return Task.CompletedTask;
        });
        await next(context);
    });

    /// <summary>
    /// Rejects a declared Content-Length over the limit with 413 before anything reads the body; Kestrel's
    /// MaxRequestBodySize (set to the same value) stops chunked bodies that grow past it.
    /// </summary>
    public static IApplicationBuilder UseRequestBodyLimit(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        var limit = context.RequestServices.GetRequiredService<IOptions<HttpOptions>>().Value.MaxRequestBodyBytes;
        var feature = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (context.GetEndpoint()?.Metadata.GetMetadata<Knowledge.KnowledgeApi.UploadLimitMetadata>() is not null)
        {
            // Uploads have their own, larger limit; the multipart reader enforces it per file as well.
            limit = context.RequestServices.GetRequiredService<IOptions<Knowledge.KnowledgeOptions>>().Value.MaxUploadBytes + (1L << 20);
            if (feature is { IsReadOnly: false }) feature.MaxRequestBodySize = limit;
        }
        var effective = feature?.MaxRequestBodySize ?? limit;
        if (context.Request.ContentLength > effective && context.GetEndpoint()?.Metadata.GetMetadata<IRequestSizeLimitMetadata>() is null)
        {
            var detail = $"The request body is {context.Request.ContentLength} bytes; the limit is {effective} bytes.";
            await JsonInput.WriteProblemAsync(context, StatusCodes.Status413PayloadTooLarge, "Payload Too Large", detail);
            return;
        }
        await next(context);
    });
}

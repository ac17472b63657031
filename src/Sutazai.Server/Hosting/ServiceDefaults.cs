using System.IO.Compression;
using System.Text.Json.Serialization;
using System.Threading.RateLimiting;
using OpenTelemetry.Resources;
using HttpOptions = Sutazai.Server.Configuration.HttpOptions;
using JsonOptions = Microsoft.AspNetCore.Http.Json.JsonOptions;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.ResponseCompression;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using Scalar.AspNetCore;
using Sutazai.Server.Configuration;

namespace Sutazai.Server.Hosting;

public static class ServiceDefaults
{
    public const string AuthRateLimitPolicy = "auth";

    /// <summary>Settings, errors, JSON, limits, CORS, compression, rate limits, OpenAPI and telemetry.</summary>
    public static WebApplicationBuilder AddSutazaiDefaults(this WebApplicationBuilder builder)
    {
        builder.AddSutazaiSettings();
        builder.AddSutazaiClusterBus();
        var services = builder.Services;
        var http = builder.Configuration.Read<HttpOptions>(HttpOptions.Section);

        services.AddProblemDetails(o => o.CustomizeProblemDetails = ctx =>
        {
            ctx.ProblemDetails.Instance ??= ctx.HttpContext.Request.Path;
            ctx.ProblemDetails.Extensions["requestId"] = ctx.HttpContext.TraceIdentifier;
        });
        services.AddExceptionHandler<ProblemDetailsExceptionHandler>();
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        services.Configure<JsonOptions>(o =>
        {
            o.SerializerOptions.Converters.Add(new JsonStringEnumConverter(System.Text.Json.JsonNamingPolicy.CamelCase));
        });
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = http.MaxRequestBodyBytes;
            k.AddServerHeader = false;
        });

        services.AddCors(o => o.AddDefaultPolicy(p =>
        {
            var origins = http.CorsOriginList;
            if (origins.Length > 0) p.WithOrigins(origins).AllowAnyHeader().AllowAnyMethod().WithExposedHeaders(HttpPipeline.RequestIdHeader, "Retry-After");
        }));
        services.AddResponseCompression(o =>
        {
            o.EnableForHttps = true;
            o.Providers.Add<BrotliCompressionProvider>();
            o.Providers.Add<GzipCompressionProvider>();
            o.MimeTypes = ResponseCompressionDefaults.MimeTypes.Concat(["application/problem+json"]);
        });
        services.Configure<BrotliCompressionProviderOptions>(o => o.Level = CompressionLevel.Fastest);
        services.Configure<GzipCompressionProviderOptions>(o => o.Level = CompressionLevel.Fastest);

        services.AddRateLimiter(o =>
        {
            o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            // One budget per client address for every door that takes a password or a token: /api/v1/auth and the web
            // UI's sign-in, register, reset and password-change forms. Only their posts count: showing a form is free.
            o.AddPolicy(AuthRateLimitPolicy, context =>
            {
                if (HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method))
                    return RateLimitPartition.GetNoLimiter("read");
                var perMinute = context.RequestServices.GetRequiredService<IOptions<RateLimitOptions>>().Value.AuthPerMinute;
                var client = context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
                // With Redis the window is counted once for every node (a client cannot multiply its attempts by the
                // number of nodes behind the load balancer); without it, per node.
                var local = new FixedWindowRateLimiterOptions { PermitLimit = perMinute, Window = TimeSpan.FromMinutes(1), QueueLimit = 0 };
                if (context.RequestServices.GetService<RedisClusterBus>() is { } redis)
                    return RateLimitPartition.Get($"{redis.Prefix}:auth:{client}", key => new SharedRateLimiter(
                        new RedisRateLimiting.RedisFixedWindowRateLimiter<string>(key, new RedisRateLimiting.RedisFixedWindowRateLimiterOptions
                        {
                            ConnectionMultiplexerFactory = () => redis.Connection,
                            PermitLimit = perMinute,
                            Window = TimeSpan.FromMinutes(1),
                        }),
                        new FixedWindowRateLimiter(local),
                        context.RequestServices.GetRequiredService<ILogger<SharedRateLimiter>>()));
                return RateLimitPartition.GetFixedWindowLimiter(client, _ => local);
            });
            o.OnRejected = async (ctx, ct) =>
            {
                var retryAfter = ctx.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? (int)Math.Ceiling(wait.TotalSeconds)
                    : ctx.Lease.TryGetMetadata(RedisRateLimiting.RateLimitMetadataName.RetryAfter, out var seconds) ? Math.Max(1, seconds)
                    : 60;
                ctx.HttpContext.Response.Headers.RetryAfter = retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture);
                await ctx.HttpContext.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
                {
                    HttpContext = ctx.HttpContext,
                    ProblemDetails = new ProblemDetails
                    {
                        Status = StatusCodes.Status429TooManyRequests,
                        Title = "Too Many Requests",
                        Detail = $"Too many authentication requests from this address. Try again in {retryAfter} seconds.",
                    },
                });
            };
        });

        services.AddOpenApi(o => o.AddDocumentTransformer<BearerSecuritySchemeTransformer>());

        services.AddSingleton<SutazaiMetrics>();
        services.AddSingleton<MonitorSampler>();
        services.AddHostedService(sp => sp.GetRequiredService<MonitorSampler>());
        services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("sutazai"))
            .WithMetrics(m => m
                .AddAspNetCoreInstrumentation()
                .AddRuntimeInstrumentation()
                .AddMeter(SutazaiMetrics.MeterName, "Microsoft.EntityFrameworkCore", "Npgsql", "System.Net.Http")
                .AddPrometheusExporter());
        return builder;
    }

    public static WebApplication UseSutazaiDefaults(this WebApplication app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseRequestId();
        app.UseSecurityHeaders();
        app.UseResponseCompression();
        app.UseRouting();
        app.UseCors();
        app.UseRequestBodyLimit();
        app.UseRateLimiter();
        // Server pings keep idle sockets alive through proxies; a peer that stops answering is dropped.
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.FromSeconds(15), KeepAliveTimeout = TimeSpan.FromSeconds(45) });
        app.UseAuthentication();
        app.UseAuthorization();

        if (app.Configuration.ServesApi())
        {
            app.MapOpenApi();
            app.MapScalarApiReference("/docs", o => o.WithTitle("SutazAI API").WithOpenApiRoutePattern("/openapi/{documentName}.json"));
        }
        app.MapPrometheusScrapingEndpoint("/metrics");
        return app;
    }
}

using Microsoft.Extensions.Diagnostics.Metrics;
using System.IO.Compression;
using System.Text.Json.Serialization;
using System.Threading.RateLimiting;
using OpenTelemetry.Resources;
using HttpOptions = Sutazai.Server.Configuration.HttpOptions;
using JsonOptions = Microsoft.AspNetCore.Http.Json.JsonOptions;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.AspNetCore.ResponseCompression;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Scalar.AspNetCore;
using Sutazai.Server.Configuration;

namespace Sutazai.Server.Hosting;

public static class ServiceDefaults
{
    public const string AuthRateLimitPolicy = "auth";
    public const string ExpensiveRateLimitPolicy = "expensive";

    /// <summary>Settings, errors, JSON, limits, CORS, compression, rate limits, OpenAPI and telemetry.</summary>
    public static WebApplicationBuilder AddSutazaiDefaults(this WebApplicationBuilder builder)
    {
        builder.AddSutazaiSettings();
        builder.AddSutazaiClusterBus();
        MetricsPort.Listen(builder);
        var services = builder.Services;
        services.AddHostedService<DataDirGuard>();
        var http = builder.Configuration.Read<HttpOptions>(HttpOptions.Section);

        services.AddProblemDetails(o => o.CustomizeProblemDetails = ctx =>
        {
            ctx.ProblemDetails.Instance ??= ctx.HttpContext.Request.Path;
            ctx.ProblemDetails.Extensions["requestId"] = ctx.HttpContext.TraceIdentifier;
        });
        // After the default writer, which declines when Accept names neither JSON nor */* (e.g. application/xml):
        // an error is still answered as JSON rather than turning into a second, unhandled one.
        services.AddSingleton<IProblemDetailsWriter, FallbackProblemDetailsWriter>();
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

        services.Configure<ForwardedHeadersOptions>(o =>
        {
            // Only the configured proxies are believed; the framework's loopback defaults are cleared so that, with
            // none configured, a client cannot pick its own address (and so its rate-limit budget) with a header.
            o.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
            o.KnownProxies.Clear();
            o.KnownIPNetworks.Clear();
            foreach (var entry in http.KnownProxyList)
            {
                if (entry.Contains('/', StringComparison.Ordinal)) o.KnownIPNetworks.Add(System.Net.IPNetwork.Parse(entry));
                else o.KnownProxies.Add(System.Net.IPAddress.Parse(entry));
            }
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
                return PerMinute(context, $"auth:{context.Connection.RemoteIpAddress?.ToString() ?? "unknown"}", perMinute);
            });
            // Routes that spend compute or storage (generation, embeddings, uploads, URL ingestion, agent runs): a
            // budget per signed-in user (per address for the rare anonymous caller), so one account cannot starve others.
            o.AddPolicy(ExpensiveRateLimitPolicy, context =>
            {
                var perMinute = context.RequestServices.GetRequiredService<IOptions<RateLimitOptions>>().Value.ExpensivePerMinute;
                var who = context.User.Identity?.IsAuthenticated == true && context.User.FindFirst("sub")?.Value is { } id
                    ? "user:" + id
                    : "addr:" + (context.Connection.RemoteIpAddress?.ToString() ?? "unknown");
                return PerMinute(context, "expensive:" + who, perMinute);
            });
            o.OnRejected = async (ctx, ct) =>
            {
                var retryAfter = ctx.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? (int)Math.Ceiling(wait.TotalSeconds)
                    : ctx.Lease.TryGetMetadata(RedisRateLimiting.RateLimitMetadataName.RetryAfter, out var seconds) ? Math.Max(1, seconds)
                    : 60;
                ctx.HttpContext.Response.Headers.RetryAfter = retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture);
                var detail = ctx.HttpContext.GetEndpoint()?.Metadata.GetMetadata<EnableRateLimitingAttribute>()?.PolicyName == AuthRateLimitPolicy
                    ? $"Too many authentication requests from this address. Try again in {retryAfter} seconds."
                    : $"Too many requests to expensive routes (generation, embeddings, uploads, runs) from your account. Try again in {retryAfter} seconds.";
                if (OpenAICompatible.OpenAIEndpointMetadata.Applies(ctx.HttpContext))
                {
                    await OpenAICompatible.OpenAIErrors.WriteAsync(ctx.HttpContext, StatusCodes.Status429TooManyRequests, detail, code: "rate_limit_exceeded");
                    return;
                }
                await ctx.HttpContext.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
                {
                    HttpContext = ctx.HttpContext,
                    ProblemDetails = new ProblemDetails { Status = StatusCodes.Status429TooManyRequests, Title = "Too Many Requests", Detail = detail },
                });
            };
        });

        services.AddOpenApi(o => o.AddDocumentTransformer<BearerSecuritySchemeTransformer>());

        services.AddSingleton<SutazaiMetrics>();
        // Readiness as a metric (sutazai.health.status), so alert rules can see a degraded node.
        services.AddSingleton<Microsoft.Extensions.Diagnostics.HealthChecks.IHealthCheckPublisher, Health.HealthMetricsPublisher>();
        services.Configure<Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckPublisherOptions>(o =>
        {
            o.Delay = TimeSpan.FromSeconds(5);
            o.Period = TimeSpan.FromSeconds(30);
            o.Predicate = check => check.Tags.Contains("ready");
        });
        services.AddSingleton<MonitorSampler>();
        services.AddScoped<ActivityStatistics>();
        services.AddHostedService(sp => sp.GetRequiredService<MonitorSampler>());
        services.AddHostedService<NodeRegistry>();
        services.AddScoped<NodeDirectory>();
        // The meters are chosen by Microsoft.Extensions.Diagnostics rules, not the SDK's AddMeter: a rule matches a
        // process-wide meter or one made by this host's own IMeterFactory, never another host's. With AddMeter the
        // SDK's process-wide listener also takes the same-named meters of every other host in the process, and when
        // one of those hosts stops, its disposed instruments end the shared metric streams here (this host's
        // sutazai_* and http_server_* series vanish from /metrics).
        services.AddMetrics(m => m
            .EnableMetrics(SutazaiMetrics.MeterName)
            .EnableMetrics(Sutazai.Inference.ResolvedModel.TelemetrySource)
            .EnableMetrics("Microsoft.AspNetCore.*")
            .EnableMetrics("System.Runtime")
            .EnableMetrics("System.Net.Http")
            .EnableMetrics("Microsoft.EntityFrameworkCore")
            .EnableMetrics("Npgsql"));
        var telemetry = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("sutazai"))
            .WithMetrics(m => m.AddPrometheusExporter());
        // With the standard OTEL_EXPORTER_OTLP_* variables (or the same keys in configuration), traces, metrics and
        // logs also go out over OTLP; without them no trace is recorded at all.
        if (!string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            telemetry
                .WithTracing(t => Npgsql.TracerProviderBuilderExtensions.AddNpgsql(t)
                    .AddAspNetCoreInstrumentation(o => o.Filter = http => !http.Request.Path.StartsWithSegments("/metrics") && !http.Request.Path.StartsWithSegments("/health"))
                    .AddHttpClientInstrumentation()
                    .AddSource(Sutazai.Inference.ResolvedModel.TelemetrySource))
                .WithLogging()
                .UseOtlpExporter();
        }
        return builder;
    }

    /// <summary>
    /// A fixed one-minute window for <paramref name="key"/>. With Redis the window is counted once for every node (a
    /// client cannot multiply its budget by the number of nodes behind the load balancer); without it, per node.
    /// </summary>
    private static RateLimitPartition<string> PerMinute(HttpContext context, string key, int perMinute)
    {
        var local = new FixedWindowRateLimiterOptions { PermitLimit = perMinute, Window = TimeSpan.FromMinutes(1), QueueLimit = 0 };
        if (context.RequestServices.GetService<RedisClusterBus>() is { } redis)
            return RateLimitPartition.Get($"{redis.Prefix}:{key}", shared => new SharedRateLimiter(
                new RedisRateLimiting.RedisFixedWindowRateLimiter<string>(shared, new RedisRateLimiting.RedisFixedWindowRateLimiterOptions
                {
                    ConnectionMultiplexerFactory = () => redis.Connection,
                    PermitLimit = perMinute,
                    Window = TimeSpan.FromMinutes(1),
                }),
                new FixedWindowRateLimiter(local),
                context.RequestServices.GetRequiredService<ILogger<SharedRateLimiter>>()));
        return RateLimitPartition.GetFixedWindowLimiter(key, _ => local);
    }

    public static WebApplication UseSutazaiDefaults(this WebApplication app)
    {
        MetricsPort.Separate(app);
        if (app.Services.GetRequiredService<IOptions<HttpOptions>>().Value.KnownProxyList.Length > 0) app.UseForwardedHeaders();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseRequestId();
        app.UseSecurityHeaders();
        // Before anything that may read the database (sign-in, API keys, endpoints): held until the node is started.
        app.UseWarmupGate();
        app.UseResponseCompression();
        app.UseRouting();
        app.UseCors();
        app.UseRequestBodyLimit();
        // Server pings keep idle sockets alive through proxies; a peer that stops answering is dropped.
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.FromSeconds(15), KeepAliveTimeout = TimeSpan.FromSeconds(45) });
        app.UseAuthentication();
        // Built off the start-up path: the authorization middleware's policy cache builds every endpoint when it is
        // constructed (about a second here), which would otherwise delay listening and so /health.
        app.UseDeferred(b => b.UseAuthorization());
        ((IApplicationBuilder)app).Properties["__AuthorizationMiddlewareSet"] = true; // so WebApplication does not add a second, eager one
        // After authentication, so per-user budgets know the user (the auth budget is per address either way).
        app.UseRateLimiter();
        // After the checks that need no body: 401/429 come first, then 415/400 for a body that is not UTF-8 JSON.
        app.UseJsonInputGuard();

        if (app.Configuration.ServesApi())
        {
            app.MapOpenApi();
            app.MapScalarApiReference("/docs", o => o.WithTitle("SutazAI API").WithOpenApiRoutePattern("/openapi/{documentName}.json"));
        }
        app.MapPrometheusScrapingEndpoint("/metrics");
        return app;
    }
}

using Microsoft.AspNetCore.Http.HttpResults;
using Sutazai.Inference;
using Sutazai.Inference.Providers;
using Sutazai.Server.Identity;

namespace Sutazai.Server.Inference;

public sealed record OllamaConnectRequest(string? Url);

/// <summary>
/// The Ollama connection: <c>url</c> in force (null when none), where it came from (<c>none</c>, <c>configuration</c>,
/// <c>autoDetected</c>, <c>administrator</c>), whether it answers, and the models it lists.
/// </summary>
public sealed record OllamaConnectionResponse(string? Url, string Source, bool Reachable, string Detail, IReadOnlyList<string> Models);

/// <summary>Connect, change or disconnect Ollama at run time (admin) — no restart, every node follows within seconds.</summary>
public static class OllamaApi
{
    public static void MapOllamaApi(this IEndpointRouteBuilder routes)
    {
        var ollama = routes.MapGroup("/api/v1/admin/ollama").WithTags("Models").RequireAuthorization(IdentitySetup.AdminPolicy);
        ollama.MapGet("", Get).WithSummary("The Ollama server in use, where its address came from, and whether it answers (admin).");
        ollama.MapPut("", Connect).WithSummary("Connect an Ollama server by address; it must answer GET /api/version (admin).");
        ollama.MapDelete("", Disconnect).WithSummary("Stop using Ollama, also overriding a configured address (admin).");
    }

    private static async Task<Ok<OllamaConnectionResponse>> Get(OllamaSwitch ollama, ModelCatalog catalog, CancellationToken ct) =>
        TypedResults.Ok(await DescribeAsync(ollama, catalog, ct));

    private static async Task<Results<Ok<OllamaConnectionResponse>, ProblemHttpResult>> Connect(OllamaConnectRequest request, IServiceProvider services,
        ILoggerFactory loggers, CancellationToken ct)
    {
        if (await ConnectAsync(services, request.Url, ct) is { } error) return Problems.Validation("url", error);
        var ollama = services.GetRequiredService<OllamaSwitch>();
        var state = await DescribeAsync(ollama, services.GetRequiredService<ModelCatalog>(), ct);
        loggers.CreateLogger("Sutazai.Models").LogInformation("Ollama connected at {Url} ({Count} models)", state.Url, state.Models.Count);
        return TypedResults.Ok(state);
    }

    private static async Task<Ok<OllamaConnectionResponse>> Disconnect(OllamaSwitch ollama, ModelCatalog catalog, ILoggerFactory loggers, CancellationToken ct)
    {
        var state = await DisconnectAsync(ollama, catalog, ct);
        loggers.CreateLogger("Sutazai.Models").LogInformation("Ollama disconnected");
        return TypedResults.Ok(state);
    }

    /// <summary>Stops using Ollama and forgets its listed models (the API and the web UI); returns the new state.</summary>
    public static async Task<OllamaConnectionResponse> DisconnectAsync(OllamaSwitch ollama, ModelCatalog catalog, CancellationToken ct)
    {
        await ollama.DisconnectAsync(ct);
        catalog.Invalidate();
        return await DescribeAsync(ollama, catalog, ct);
    }

    /// <summary>
    /// Checks the address (absolute http/https, at most <see cref="SystemSettings.MaxValueLength"/> characters, an
    /// Ollama server answering <c>/api/version</c>) and connects it (the API and the web UI). Returns why it could not,
    /// or null when connected.
    /// </summary>
    public static async Task<string?> ConnectAsync(IServiceProvider services, string? input, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(input)) return "Url is required.";
        var text = input.Trim();
        if (!Uri.TryCreate(text, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https") || url.Host.Length == 0)
            return "Enter an http:// or https:// address, for example http://localhost:11434.";
        if (url.Query.Length > 0 || url.Fragment.Length > 0 || url.UserInfo.Length > 0) return "The address must not carry a query, a fragment or credentials.";
        if (!url.AbsolutePath.EndsWith('/')) url = new Uri(url.AbsoluteUri + "/");
        if (url.ToString().Length > SystemSettings.MaxValueLength) return $"The address is longer than {SystemSettings.MaxValueLength} characters.";
        using var http = services.GetRequiredService<IHttpClientFactory>().CreateClient();
        if (!await OllamaProvider.ProbeAsync(url, http, ct)) return $"No Ollama server answered at {url} (GET /api/version).";
        await services.GetRequiredService<OllamaSwitch>().ConnectAsync(url, ct);
        services.GetRequiredService<ModelCatalog>().Invalidate();
        return null;
    }

    public static async Task<OllamaConnectionResponse> DescribeAsync(OllamaSwitch ollama, ModelCatalog catalog, CancellationToken ct)
    {
        var state = await ollama.StateAsync(ct);
        var source = System.Text.Json.JsonNamingPolicy.CamelCase.ConvertName(state.Source.ToString());
        if (state.Url is null) return new OllamaConnectionResponse(null, source, false, "No Ollama server is connected.", []);
        var health = await ollama.CheckHealthAsync(ct);
        var models = health.Available
            ? (await catalog.ListAsync(ct)).Models.Where(m => m.Provider == OllamaProvider.ProviderName).Select(m => m.Id).ToList()
            : [];
        return new OllamaConnectionResponse(state.Url, source, health.Available, health.Detail, models);
    }
}

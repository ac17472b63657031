using Microsoft.AspNetCore.Http.HttpResults;
using Sutazai.Inference;
using Sutazai.Inference.LlamaCpp;
using Sutazai.Server.Identity;

namespace Sutazai.Server.Inference;

public sealed record ModelsResponse(IReadOnlyList<ModelInfo> Models, string? DefaultModel, IReadOnlyList<ProviderHealth> Problems);

public sealed record CatalogueEntryResponse(string Name, string Source, string Description, long ApproximateBytes, bool Installed);

public static partial class ModelsApi
{
    public static IEndpointRouteBuilder MapModelsApi(this IEndpointRouteBuilder routes)
    {
        var models = routes.MapGroup("/api/v1/models").WithTags("Models").RequireAuthorization();
        models.MapGet("", List).WithSummary("Every model of every configured provider, with the default.");
        models.MapGet("/catalog", Catalogue).WithSummary("Built-in list of small chat models that can be pulled.");
        models.MapDelete("/{id}", Delete).RequireAuthorization(IdentitySetup.AdminPolicy).WithSummary("Unload and delete a local model (admin).");
        MapPulls(models);
        return routes;
    }

    private static async Task<Ok<ModelsResponse>> List(ModelCatalog catalog, CancellationToken ct)
    {
        var listing = await catalog.ListAsync(ct);
        return TypedResults.Ok(new ModelsResponse(listing.Models, await catalog.DefaultModelIdAsync(ct), listing.Problems));
    }

    private static Ok<IEnumerable<CatalogueEntryResponse>> Catalogue(LlamaCppProvider llama)
    {
        var installed = llama.ListFiles().Select(f => Path.GetFileName(f.Path)).ToHashSet(StringComparer.OrdinalIgnoreCase);
        return TypedResults.Ok(ModelCatalogue.Entries.Select(e =>
            new CatalogueEntryResponse(e.Name, e.Source, e.Description, e.ApproximateBytes, installed.Contains(e.Source[(e.Source.LastIndexOf('/') + 1)..]))));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> Delete(string id, IServiceProvider services) =>
        await DeleteLocalModelAsync(services, id, CancellationToken.None) is { } problem ? Problems.NotFound(problem) : TypedResults.NoContent();

    /// <summary>Unloads and deletes a local GGUF model (the API and the web UI); returns why it could not, or null.</summary>
    public static async Task<string?> DeleteLocalModelAsync(IServiceProvider services, string id, CancellationToken ct)
    {
        var llama = services.GetRequiredService<LlamaCppProvider>();
        var file = llama.FindFile(id);
        if (file is null) return $"No local model '{id}'. Models served by Ollama or an OpenAI-compatible server are managed there.";
        ct.ThrowIfCancellationRequested();
        await llama.UnloadAsync(id);
        File.Delete(file.Path);
        services.GetRequiredService<ModelCatalog>().Invalidate();
        services.GetRequiredService<ILoggerFactory>().CreateLogger("Sutazai.Models").LogInformation("Deleted model {Model} ({Path})", id, file.Path);
        return null;
    }
}

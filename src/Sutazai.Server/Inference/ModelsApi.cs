using Microsoft.AspNetCore.Http.HttpResults;
using Sutazai.Inference;
using Sutazai.Inference.LlamaCpp;
using Sutazai.Server.Identity;

namespace Sutazai.Server.Inference;

/// <summary>A listed model; <c>default</c> marks the one a request that names no model uses.</summary>
public sealed record ModelEntry(string Id, string Provider, long? SizeBytes, int? ContextLength, string? Family, string? Quantization, bool Loaded, bool Default)
{
    public static ModelEntry From(ModelInfo m, ModelInfo? defaultModel) =>
        new(m.Id, m.Provider, m.SizeBytes, m.ContextLength, m.Family, m.Quantization, m.Loaded,
            defaultModel is not null && m.Provider == defaultModel.Provider && m.Id == defaultModel.Id);
}

public sealed record ModelsResponse(IReadOnlyList<ModelEntry> Models, string? DefaultModel, IReadOnlyList<ProviderHealth> Problems);

public sealed record SetDefaultModelRequest(string? Model);

public sealed record CatalogueEntryResponse(string Name, string Source, string Description, long ApproximateBytes, bool Installed);

public static partial class ModelsApi
{
    public static IEndpointRouteBuilder MapModelsApi(this IEndpointRouteBuilder routes)
    {
        var models = routes.MapGroup("/api/v1/models").WithTags("Models").RequireAuthorization(ScopePolicies.Models);
        models.MapGet("", List).WithSummary("Every model of every configured provider, with the default.");
        models.MapGet("/catalog", Catalogue).WithSummary("Built-in list of small chat models that can be pulled.");
        models.MapPut("/default", SetDefault).RequireAuthorization(IdentitySetup.AdminPolicy)
            .WithSummary("Choose the model requests that name none use (admin); stored in the database, before Sutazai:Inference:DefaultModel.");
        models.MapDelete("/{id}", Delete).RequireAuthorization(IdentitySetup.AdminPolicy).WithSummary("Unload and delete a local model (admin).");
        MapPulls(models);
        routes.MapOllamaApi();
        return routes;
    }

    private static async Task<Ok<ModelsResponse>> List(ModelCatalog catalog, CancellationToken ct)
    {
        var listing = await catalog.ListAsync(ct);
        var defaultModel = await catalog.DefaultModelAsync(ct);
        return TypedResults.Ok(new ModelsResponse([.. listing.Models.Select(m => ModelEntry.From(m, defaultModel))], defaultModel?.Id, listing.Problems));
    }

    private static async Task<Results<Ok<ModelEntry>, ProblemHttpResult>> SetDefault(SetDefaultModelRequest request, ModelCatalog catalog, StoredDefaultModel store,
        ILoggerFactory loggers, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(request.Model)) return Problems.Validation("model", "Model is required.");
        var result = await SetDefaultModelAsync(catalog, store, request.Model.Trim(), ct);
        if (result is null) return Problems.NotFound($"No model '{request.Model.Trim()}' is listed by any provider.");
        loggers.CreateLogger("Sutazai.Models").LogInformation("Default model set to {Provider}/{Model}", result.Provider, result.Id);
        return TypedResults.Ok(ModelEntry.From(result, result));
    }

    /// <summary>Stores a listed model as the default (the API and the web UI); null when no provider lists it.</summary>
    public static async Task<ModelInfo?> SetDefaultModelAsync(ModelCatalog catalog, StoredDefaultModel store, string model, CancellationToken ct)
    {
        if (model.Length > SystemSettings.MaxValueLength) return null;
        catalog.Invalidate();
        if (await catalog.FindAsync(model, ct) is not { } found) return null;
        await store.SetAsync($"{found.Provider}/{found.Id}", ct);
        return found;
    }

    private static Ok<IEnumerable<CatalogueEntryResponse>> Catalogue(LlamaCppProvider llama)
    {
        var installed = llama.ListFiles().Select(f => Path.GetFileName(f.Path)).ToHashSet(StringComparer.OrdinalIgnoreCase);
        return TypedResults.Ok(ModelCatalogue.Entries.Select(e =>
            new CatalogueEntryResponse(e.Name, e.Source, e.Description, e.ApproximateBytes, installed.Contains(e.Source[(e.Source.LastIndexOf('/') + 1)..]))));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> Delete(string id, LocalModels models) =>
        await models.DeleteAsync(id, CancellationToken.None) is { } problem ? Problems.NotFound(problem) : TypedResults.NoContent();
}

using Microsoft.AspNetCore.Http.HttpResults;

namespace Sutazai.Server.Identity;

public sealed record CreateApiKeyRequest(string? Name, DateTime? ExpiresAt);

/// <summary>The one answer that holds the key itself; it is never shown again.</summary>
public sealed record CreatedApiKeyResponse(Guid Id, string Name, string Key, string Prefix, DateTime CreatedAt, DateTime? ExpiresAt);

public sealed record ApiKeyResponse(Guid Id, string Name, string Prefix, DateTime CreatedAt, DateTime? ExpiresAt, DateTime? LastUsedAt, DateTime? RevokedAt)
{
    public static ApiKeyResponse From(Sutazai.Data.Entities.ApiKey key) =>
        new(key.Id, key.Name, key.Prefix, key.CreatedAt, key.ExpiresAt, key.LastUsedAt, key.RevokedAt);
}

public static class ApiKeysApi
{
    public static IEndpointRouteBuilder MapApiKeysApi(this IEndpointRouteBuilder routes)
    {
        var keys = routes.MapGroup("/api/v1/keys").WithTags("API keys").RequireAuthorization();
        keys.MapPost("", Create).WithSummary("Create an API key (sk-sz-…) for the OpenAI-compatible API and scripts; the key is shown only in this answer.");
        keys.MapGet("", List).WithSummary("The signed-in user's API keys, newest first, without the secrets.");
        keys.MapDelete("/{id:guid}", Revoke).WithSummary("Revoke one of the signed-in user's API keys; it stops working at once.");
        return routes;
    }

    private static async Task<Results<Created<CreatedApiKeyResponse>, ProblemHttpResult>> Create(
        CreateApiKeyRequest request, HttpContext http, ApiKeyService keys, TimeProvider time, CancellationToken ct)
    {
        var errors = new Dictionary<string, List<string>>();
        var name = request.Name?.Trim();
        if (string.IsNullOrEmpty(name)) AccountService.Add(errors, "name", "Name is required.");
        else if (name.Length > ApiKeyService.MaxNameLength) AccountService.Add(errors, "name", $"Name must be at most {ApiKeyService.MaxNameLength} characters.");
        DateTime? expiresAt = request.ExpiresAt is { } e ? (e.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(e, DateTimeKind.Utc) : e.ToUniversalTime()) : null;
        if (expiresAt <= time.GetUtcNow().UtcDateTime) AccountService.Add(errors, "expiresAt", "expiresAt must be in the future.");
        if (errors.Count > 0) return Problems.Validation(AccountService.Freeze(errors));

        var (entity, key) = await keys.CreateAsync(http.User.UserId(), name!, expiresAt, ct);
        return TypedResults.Created($"/api/v1/keys/{entity.Id}",
            new CreatedApiKeyResponse(entity.Id, entity.Name, key, entity.Prefix, entity.CreatedAt, entity.ExpiresAt));
    }

    private static async Task<Ok<List<ApiKeyResponse>>> List(HttpContext http, ApiKeyService keys, CancellationToken ct) =>
        TypedResults.Ok((await keys.ListAsync(http.User.UserId(), ct)).Select(ApiKeyResponse.From).ToList());

    private static async Task<Results<NoContent, ProblemHttpResult>> Revoke(Guid id, HttpContext http, ApiKeyService keys, CancellationToken ct) =>
        await keys.RevokeAsync(http.User.UserId(), id, ct) ? TypedResults.NoContent() : Problems.NotFound("No API key with that id.");
}

using Microsoft.AspNetCore.Http.HttpResults;

namespace Sutazai.Server.Identity;

public sealed record CreateApiKeyRequest(string? Name, DateTime? ExpiresAt, IReadOnlyList<string>? Scopes);

/// <summary>The one answer that holds the key itself; it is never shown again.</summary>
public sealed record CreatedApiKeyResponse(Guid Id, string Name, string Key, string Prefix, IReadOnlyList<string> Scopes, DateTime CreatedAt, DateTime? ExpiresAt);

public sealed record ApiKeyResponse(Guid Id, string Name, string Prefix, IReadOnlyList<string> Scopes, DateTime CreatedAt, DateTime? ExpiresAt, DateTime? LastUsedAt, DateTime? RevokedAt)
{
    public static ApiKeyResponse From(Sutazai.Data.Entities.ApiKey key) =>
        new(key.Id, key.Name, key.Prefix, ApiScopes.Split(key.Scopes), key.CreatedAt, key.ExpiresAt, key.LastUsedAt, key.RevokedAt);
}

public static class ApiKeysApi
{
    public static IEndpointRouteBuilder MapApiKeysApi(this IEndpointRouteBuilder routes)
    {
        // Interactive sign-ins only: a key that could mint keys would outlive its own revocation.
        var keys = routes.MapGroup("/api/v1/keys").WithTags("API keys").RequireAuthorization(ScopePolicies.Interactive);
        keys.MapPost("", Create).WithSummary("Create an API key (sk-sz-…) with scopes (default inference, chat, knowledge); the key is shown only in this answer.");
        keys.MapGet("", List).WithSummary("The signed-in user's API keys, newest first, with their scopes and without the secrets.");
        keys.MapDelete("/{id:guid}", Revoke).WithSummary("Revoke one of the signed-in user's API keys; it stops working at once.");
        return routes;
    }

    private static async Task<Results<Created<CreatedApiKeyResponse>, ProblemHttpResult>> Create(
        CreateApiKeyRequest request, HttpContext http, ApiKeyService keys, CancellationToken ct) =>
        await keys.CreateAsync(http.User.UserId(), request.Name, request.ExpiresAt, request.Scopes, ct) switch
        {
            ApiKeyCreation.Created c => TypedResults.Created($"/api/v1/keys/{c.Entity.Id}",
                new CreatedApiKeyResponse(c.Entity.Id, c.Entity.Name, c.Key, c.Entity.Prefix, ApiScopes.Split(c.Entity.Scopes), c.Entity.CreatedAt, c.Entity.ExpiresAt)),
            ApiKeyCreation.Invalid i => Problems.Validation(i.Errors),
            ApiKeyCreation.Forbidden f => Problems.Forbidden(f.Detail),
            _ => throw new InvalidOperationException("Unknown key creation result."),
        };

    private static async Task<Ok<List<ApiKeyResponse>>> List(HttpContext http, ApiKeyService keys, CancellationToken ct) =>
        TypedResults.Ok((await keys.ListAsync(http.User.UserId(), ct)).Select(ApiKeyResponse.From).ToList());

    private static async Task<Results<NoContent, ProblemHttpResult>> Revoke(Guid id, HttpContext http, ApiKeyService keys, CancellationToken ct) =>
        await keys.RevokeAsync(http.User.UserId(), id, ct) ? TypedResults.NoContent() : Problems.NotFound("No API key with that id.");
}

using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Sutazai.Server.Hosting;

/// <summary>Declares the bearer scheme so /docs can send an access token.</summary>
internal sealed class BearerSecuritySchemeTransformer : IOpenApiDocumentTransformer
{
    public Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.Info.Title = "SutazAI API";
        document.Info.Description = "Self-hosted AI assistant platform. Authenticate with POST /api/v1/auth/login and send `Authorization: Bearer <accessToken>`, or an API key from POST /api/v1/keys (`Authorization: Bearer sk-sz-…`), which the OpenAI-compatible /v1 routes take as their API key.";
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes["Bearer"] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            BearerFormat = "JWT",
            Description = "Access token from /api/v1/auth/login, or an API key (sk-sz-…) from /api/v1/keys",
        };
        return Task.CompletedTask;
    }
}

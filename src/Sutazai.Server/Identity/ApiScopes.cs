using System.Security.Claims;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.AspNetCore.Mvc;
using Sutazai.Data.Entities;

namespace Sutazai.Server.Identity;

/// <summary>
/// What a credential may do. An API key carries the scopes it was created with; an interactive sign-in (JWT or the
/// UI cookie) carries every scope its role allows. <see cref="CredentialValidator"/> puts them on the principal as
/// <c>scope</c> claims, so every door (REST groups, sockets, MCP tools) checks the same thing.
/// </summary>
public static class ApiScopes
{
    public const string ClaimType = "scope";

    /// <summary>The id of the API key a principal was authenticated with; absent for interactive sign-ins.</summary>
    public const string KeyClaim = "key_id";

    /// <summary>The OpenAI-compatible <c>/v1</c> API and <c>/api/v1/generate</c>.</summary>
    public const string Inference = "inference";

    /// <summary>Conversations and the <c>/ws/chat</c> and <c>/ws/jarvis</c> sockets.</summary>
    public const string Chat = "chat";

    /// <summary>Documents, collections, search, vectors and the knowledge graph.</summary>
    public const string Knowledge = "knowledge";

    /// <summary>Agents, runs and memory.</summary>
    public const string Agents = "agents";

    /// <summary>The admin routes; only an administrator can grant it to a key, and it works only while they are one.</summary>
    public const string Admin = "admin";

    public static readonly IReadOnlyList<string> All = [Inference, Chat, Knowledge, Agents, Admin];

    /// <summary>A key created without <c>scopes</c> gets these (and so did every key made before scopes existed).</summary>
    public static readonly IReadOnlyList<string> Default = [Inference, Chat, Knowledge];

    public static bool IsKnown(string scope) => All.Contains(scope, StringComparer.Ordinal);

    /// <summary>The scopes an account with <paramref name="role"/> may hold.</summary>
    public static IReadOnlyList<string> AllowedFor(string role) => role == Roles.Admin ? All : [.. All.Where(s => s != Admin)];

    /// <summary>How a key's scopes are stored: space-separated (as OAuth writes them), in <see cref="All"/>'s order.</summary>
    public static string Join(IEnumerable<string> scopes)
    {
        var set = scopes.ToHashSet(StringComparer.Ordinal);
        return string.Join(' ', All.Where(set.Contains));
    }

    public static IReadOnlyList<string> Split(string? stored) =>
        string.IsNullOrWhiteSpace(stored) ? [] : stored.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    public static bool IsApiKey(this ClaimsPrincipal principal) => principal.HasClaim(c => c.Type == KeyClaim);

    public static bool HasScope(this ClaimsPrincipal principal, string scope) =>
        principal.HasClaim(c => c.Type == ClaimType && c.Value == scope);
}

/// <summary>The authorization policies the route groups apply (registered in <see cref="IdentitySetup"/>).</summary>
public static class ScopePolicies
{
    public const string Inference = "scope:" + ApiScopes.Inference;
    public const string Chat = "scope:" + ApiScopes.Chat;
    public const string Knowledge = "scope:" + ApiScopes.Knowledge;
    public const string Agents = "scope:" + ApiScopes.Agents;

    /// <summary>The model list serves inference clients and chat clients alike.</summary>
    public const string Models = "scope:" + ApiScopes.Inference + "|" + ApiScopes.Chat;

    /// <summary><c>/mcp</c>: its tools need one of these (each tool checks its own).</summary>
    public const string Mcp = "scope:" + ApiScopes.Agents + "|" + ApiScopes.Knowledge;

    /// <summary>
    /// Managing keys, the password and every session: a JWT or the UI cookie only, never an API key — otherwise a
    /// leaked key could mint keys that outlive its own revocation.
    /// </summary>
    public const string Interactive = "interactive";

    public static AuthorizationBuilder AddScopePolicies(this AuthorizationBuilder builder) => builder
        .AddAnyScope(Inference, ApiScopes.Inference)
        .AddAnyScope(Chat, ApiScopes.Chat)
        .AddAnyScope(Knowledge, ApiScopes.Knowledge)
        .AddAnyScope(Agents, ApiScopes.Agents)
        .AddAnyScope(Models, ApiScopes.Inference, ApiScopes.Chat)
        .AddAnyScope(Mcp, ApiScopes.Agents, ApiScopes.Knowledge)
        .AddPolicy(Interactive, p => p.RequireAuthenticatedUser().AddRequirements(new InteractiveRequirement()));

    private static AuthorizationBuilder AddAnyScope(this AuthorizationBuilder builder, string policy, params string[] anyOf) =>
        builder.AddPolicy(policy, p => p.RequireAuthenticatedUser().AddRequirements(new ScopeRequirement(anyOf)));
}

/// <summary>Met when the principal holds any of <see cref="AnyOf"/>.</summary>
public sealed class ScopeRequirement(IReadOnlyList<string> anyOf) : AuthorizationHandler<ScopeRequirement>, IAuthorizationRequirement
{
    public IReadOnlyList<string> AnyOf { get; } = anyOf;

    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, ScopeRequirement requirement)
    {
        if (requirement.AnyOf.Any(context.User.HasScope)) context.Succeed(requirement);
        return Task.CompletedTask;
    }
}

/// <summary>Met by a signed-in principal that did not come from an API key.</summary>
public sealed class InteractiveRequirement : AuthorizationHandler<InteractiveRequirement>, IAuthorizationRequirement
{
    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, InteractiveRequirement requirement)
    {
        if (context.User.Identity?.IsAuthenticated == true && !context.User.IsApiKey()) context.Succeed(requirement);
        return Task.CompletedTask;
    }
}

/// <summary>The 403 a credential gets for lacking a scope (or for being a key where a sign-in is needed).</summary>
public static class InsufficientScope
{
    public const string Code = "insufficient_scope";

    /// <summary>RFC 6750 defines the error; its section is the problem type.</summary>
    public const string Type = "https://www.rfc-editor.org/rfc/rfc6750#section-3.1";

    /// <summary>
    /// Why authorization failed, when the only failed requirements are scope ones (null otherwise, e.g. when the
    /// role is wrong too: that stays a plain 403). <c>Scope</c> is null for an interactive-only route.
    /// </summary>
    public static (string Detail, string? Scope)? Explain(PolicyAuthorizationResult result)
    {
        if (!result.Forbidden || result.AuthorizationFailure is not { } failure || failure.FailCalled) return null;
        var failed = failure.FailedRequirements.ToList();
        if (failed.Count == 0 || failed.Any(r => r is not (ScopeRequirement or InteractiveRequirement))) return null;
        if (failed.OfType<InteractiveRequirement>().Any())
            return ("API keys cannot manage API keys, the password or sessions: sign in (a JWT or the web UI) to do that.", null);
        var scopes = failed.OfType<ScopeRequirement>().SelectMany(r => r.AnyOf).Distinct().ToList();
        var named = string.Join(" or ", scopes.Select(s => $"'{s}'"));
        return ($"This API key lacks the {named} scope this route needs.", string.Join(' ', scopes));
    }

    public static ProblemDetails Problem(string detail, string? scope)
    {
        var problem = new ProblemDetails
        {
            Type = Type,
            Title = "Insufficient scope",
            Status = StatusCodes.Status403Forbidden,
            Detail = detail,
        };
        problem.Extensions["code"] = Code;
        if (scope is not null) problem.Extensions["scope"] = scope;
        return problem;
    }

    /// <summary>Writes the 403 ProblemDetails with RFC 6750's <c>WWW-Authenticate</c> challenge.</summary>
    public static async Task WriteAsync(HttpContext context, string detail, string? scope)
    {
        context.Response.StatusCode = StatusCodes.Status403Forbidden;
        context.Response.Headers.WWWAuthenticate = scope is null ? $"Bearer error=\"{Code}\"" : $"Bearer error=\"{Code}\", scope=\"{scope}\"";
        await context.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = Problem(detail, scope),
        });
    }
}

/// <summary>
/// Answers a scope failure with the <see cref="InsufficientScope"/> problem; everything else as ASP.NET Core does.
/// The OpenAI-compatible handler falls back to this one outside <c>/v1</c>.
/// </summary>
public sealed class ScopeAuthorizationResultHandler : IAuthorizationMiddlewareResultHandler
{
    private readonly AuthorizationMiddlewareResultHandler _default = new();

    public async Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        if (InsufficientScope.Explain(authorizeResult) is { } why)
        {
            await InsufficientScope.WriteAsync(context, why.Detail, why.Scope);
            return;
        }
        await _default.HandleAsync(next, context, policy, authorizeResult);
    }
}

using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Sutazai.Data.Entities;
using Sutazai.Server.Configuration;

namespace Sutazai.Server.Identity;

/// <summary>
/// The web UI's credential: an HttpOnly cookie holding the claims a JWT has (<c>sub</c>, <c>name</c>, <c>role</c>,
/// the security-stamp hash). Every request that presents it is re-validated by <see cref="CredentialValidator"/>, so a
/// deactivation, role change or "log out everywhere" (a new security stamp) ends the cookie on its next use.
/// </summary>
public static class CookieAuthentication
{
    public const string SchemeName = "Cookies";
    public const string CookieName = "sutazai.session";
    public const string LoginPath = "/login";

    /// <summary>
    /// Which handler authenticates a request: a bearer token always goes to JWT or API-key auth; /api, /v1 and the
    /// OpenAPI document and the MCP endpoint stay bearer-only (so the API answers 401, never a login redirect, and no cookie is ever a
    /// credential there); everything else (UI pages, the Blazor hub, /ws) uses the cookie.
    /// </summary>
    public static string Select(HttpContext context)
    {
        if (ApiKeyAuthenticationHandler.BearerToken(context.Request) is { Length: > 0 }) return ApiKeyAuthenticationHandler.Select(context);
        var path = context.Request.Path;
        if (path.StartsWithSegments("/api") || path.StartsWithSegments("/v1") || path.StartsWithSegments("/mcp") || path.StartsWithSegments("/openapi"))
            return JwtBearerDefaults.AuthenticationScheme;
        return SchemeName;
    }

    public static AuthenticationBuilder AddSutazaiCookie(this AuthenticationBuilder auth)
    {
        auth.AddCookie(SchemeName);
        auth.Services.AddOptions<CookieAuthenticationOptions>(SchemeName).Configure<IOptions<AuthOptions>, IOptions<SutazaiOptions>>((o, authOptions, app) =>
        {
            o.Cookie.Name = CookieName;
            o.Cookie.HttpOnly = true;
            o.Cookie.SameSite = SameSiteMode.Lax;
            // Behind a TLS-terminating proxy the request may look like http; a public https URL still means Secure.
            o.Cookie.SecurePolicy = app.Value.HasHttpsPublicUrl ? CookieSecurePolicy.Always : CookieSecurePolicy.SameAsRequest;
            o.Cookie.IsEssential = true;
            o.ExpireTimeSpan = authOptions.Value.CookieLifetime;
            o.SlidingExpiration = true;
            o.LoginPath = LoginPath;
            o.LogoutPath = "/account/logout";
            o.AccessDeniedPath = "/forbidden";
            o.ReturnUrlParameter = "returnUrl";
            o.Events = new CookieAuthenticationEvents
            {
                OnValidatePrincipal = async ctx =>
                {
                    var validator = ctx.HttpContext.RequestServices.GetRequiredService<CredentialValidator>();
                    if (ctx.Principal is null || await validator.ValidateAsync(ctx.Principal, ctx.HttpContext.RequestAborted) is not null)
                    {
                        ctx.RejectPrincipal();
                        await ctx.HttpContext.SignOutAsync(SchemeName);
                    }
                },
                // Non-page requests (the Blazor hub's negotiate, /ws) get a plain 401/403 rather than a redirect.
                OnRedirectToLogin = ctx => RedirectOrStatus(ctx, StatusCodes.Status401Unauthorized),
                OnRedirectToAccessDenied = ctx => RedirectOrStatus(ctx, StatusCodes.Status403Forbidden),
            };
        });
        return auth;
    }

    private static Task RedirectOrStatus(RedirectContext<CookieAuthenticationOptions> ctx, int status)
    {
        var accept = ctx.Request.Headers.Accept.ToString();
        if (HttpMethods.IsGet(ctx.Request.Method) && accept.Contains("text/html", StringComparison.OrdinalIgnoreCase))
            ctx.Response.Redirect(ctx.RedirectUri);
        else
            ctx.Response.StatusCode = status;
        return Task.CompletedTask;
    }

    /// <summary>The cookie principal for a user: the same claims an access token carries (without a refresh session).</summary>
    public static ClaimsPrincipal PrincipalFor(AppUser user) => new(new ClaimsIdentity(
    [
        new Claim(JwtRegisteredClaimNames.Sub, user.Id.ToString()),
        new Claim("name", user.UserName ?? ""),
        new Claim("role", user.Role),
        new Claim(TokenService.StampClaim, TokenService.StampHash(user.SecurityStamp)),
    ], SchemeName, "name", "role"));

    public static Task SignInAsync(HttpContext http, AppUser user) =>
        http.SignInAsync(SchemeName, PrincipalFor(user), new AuthenticationProperties { IsPersistent = true });
}

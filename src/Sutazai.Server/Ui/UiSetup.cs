using Sutazai.Agents;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Components.Authorization;
using Microsoft.AspNetCore.Mvc;
using MudBlazor.Services;
using Sutazai.Server.Agents;
using Sutazai.Server.Identity;
using Sutazai.Server.Ui.Components;

namespace Sutazai.Server.Ui;

/// <summary>The Blazor web UI: interactive server rendering at "/", signed in with the cookie scheme.</summary>
public static class UiSetup
{
    public static WebApplicationBuilder AddSutazaiUi(this WebApplicationBuilder builder)
    {
        // Outside Development, ASP.NET Core only serves static web assets (MudBlazor's, wwwroot) from a published
        // wwwroot; this reads the build output's manifest as well, so `dotnet run` and tests in any environment get
        // them (a no-op for a published app, which has no such manifest).
        builder.WebHost.UseStaticWebAssets();
        var services = builder.Services;
        services.AddRazorComponents().AddInteractiveServerComponents();
        services.AddCascadingAuthenticationState();
        services.AddScoped<AuthenticationStateProvider, RevalidatingUiAuthenticationStateProvider>();
        services.AddScoped<UiSession>();
        services.AddScoped<UiAccounts>();
        services.AddMudServices();
        services.AddOptions<Microsoft.AspNetCore.Antiforgery.AntiforgeryOptions>().Configure<Microsoft.Extensions.Options.IOptions<Configuration.SutazaiOptions>>((o, app) =>
        {
            if (app.Value.HasHttpsPublicUrl) o.Cookie.SecurePolicy = CookieSecurePolicy.Always;
        });
        return builder;
    }

    public static WebApplication MapSutazaiUi(this WebApplication app)
    {
        app.UseAntiforgery();
        app.MapStaticAssets();
        // Blazor would add its own CSP (frame-ancestors only); the host's full page policy (HttpPipeline) applies instead.
        app.MapRazorComponents<App>().AddInteractiveServerRenderMode(o => o.ContentSecurityFrameAncestorsPolicy = null);

        var account = app.MapGroup("/account").ExcludeFromDescription();
        account.MapPost("/logout", async (HttpContext http, [FromForm] string? returnUrl) =>
        {
            await http.SignOutAsync(CookieAuthentication.SchemeName);
            return TypedResults.Redirect("/login?message=signed-out");
        });
        // Ends every session: refresh-token families are revoked and the security stamp changes, which the cookie
        // (and every access token) is checked against, so all browsers and API clients of this account are signed out;
        // with revokeApiKeys=true every API key goes too.
        account.MapPost("/logout-all", async (HttpContext http, AccountService accounts, [FromForm] string? returnUrl, [FromForm] bool? revokeApiKeys) =>
        {
            if (http.User.Identity?.IsAuthenticated == true)
                await accounts.LogOutEverywhereAsync(http.User.UserId(), revokeApiKeys == true, http.RequestAborted);
            await http.SignOutAsync(CookieAuthentication.SchemeName);
            return TypedResults.Redirect("/login?message=signed-out");
        });
        // The run history's download: the same zip as GET /api/v1/runs/{id}/artifacts/workspace.zip, with the cookie
        // (which /api never accepts); owner-scoped, so another user's run is 404.
        app.MapGet("/ui/runs/{id:guid}/workspace.zip", (Guid id, HttpContext http, AgentRunService service, AgentWorkspaces workspaces, RunArchive archive, CancellationToken ct) =>
                Sutazai.Server.Agents.WorkspaceZip.WriteAsync(http.User.UserId(), id, http, service, workspaces, archive, ct))
            .RequireAuthorization().ExcludeFromDescription();
        return app;
    }
}

using System.Security.Claims;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Authorization;
using Microsoft.AspNetCore.Components.Server;
using Sutazai.Data.Entities;
using Sutazai.Server.Identity;

namespace Sutazai.Server.Ui;

/// <summary>
/// The signed-in user of a Blazor circuit. A circuit outlives the HTTP request whose cookie opened it, so every action
/// re-runs <see cref="CredentialValidator"/> (the same check the cookie, JWTs and API keys pass): a deactivated account,
/// a role change or "log out everywhere" takes effect on the next click, not at the next page load.
/// </summary>
public sealed class UiSession(AuthenticationStateProvider auth, IServiceScopeFactory scopes, NavigationManager navigation)
{
    public async Task<ClaimsPrincipal> PrincipalAsync() => (await auth.GetAuthenticationStateAsync()).User;

    /// <summary>The user id after re-validation, or null (and a full reload to the sign-in page) when it no longer holds.</summary>
    public async Task<Guid?> UserIdAsync(CancellationToken ct = default)
    {
        var principal = await PrincipalAsync();
        if (principal.Identity?.IsAuthenticated != true) return Fail();
        // Validate a copy: the validator refreshes the role claim, and the circuit's principal is shared state.
        var copy = principal.Clone();
        await using var scope = scopes.CreateAsyncScope();
        var failure = await scope.ServiceProvider.GetRequiredService<CredentialValidator>().ValidateAsync(copy, ct);
        if (failure is not null) return Fail();
        IsAdmin = copy.FindFirstValue("role") == Roles.Admin;
        return copy.UserId();
    }

    /// <summary>The role as of the last validation.</summary>
    public bool IsAdmin { get; private set; }

    public async Task<Guid?> AdminIdAsync(CancellationToken ct = default)
    {
        var id = await UserIdAsync(ct);
        if (id is null) return null;
        if (IsAdmin) return id;
        navigation.NavigateTo("/forbidden");
        return null;
    }

    private Guid? Fail()
    {
        navigation.NavigateTo(CookieAuthentication.LoginPath, forceLoad: true);
        return null;
    }
}

/// <summary>
/// Re-checks the circuit's user every few seconds with <see cref="CredentialValidator"/>, so an open tab of a deactivated
/// or signed-out-everywhere account loses its authorized views without any click.
/// </summary>
public sealed class RevalidatingUiAuthenticationStateProvider(ILoggerFactory loggers, IServiceScopeFactory scopes)
    : RevalidatingServerAuthenticationStateProvider(loggers)
{
    protected override TimeSpan RevalidationInterval => TimeSpan.FromSeconds(10);

    protected override async Task<bool> ValidateAuthenticationStateAsync(AuthenticationState state, CancellationToken ct)
    {
        if (state.User.Identity?.IsAuthenticated != true) return true;
        await using var scope = scopes.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<CredentialValidator>().ValidateAsync(state.User.Clone(), ct) is null;
    }
}

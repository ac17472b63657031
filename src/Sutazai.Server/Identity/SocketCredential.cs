using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;

namespace Sutazai.Server.Identity;

/// <summary>
/// What a long-lived connection (a <c>/ws/*</c> socket) signed in with, kept so that it can be checked again while the
/// connection stays open: REST checks its credential on every request, a socket has only the one handshake.
/// </summary>
public abstract record SocketCredential(ClaimsPrincipal Principal)
{
    /// <summary>A JWT or an API key (the handshake's bearer header or <c>?access_token=</c>, or an <c>auth</c> frame): checked again whole, signature and expiry included.</summary>
    public sealed record Token(string Value, ClaimsPrincipal Principal) : SocketCredential(Principal);

    /// <summary>The web UI's cookie as the handshake presented it: its principal is checked again, and it ends when that cookie expires.</summary>
    public sealed record Cookie(ClaimsPrincipal Principal, DateTimeOffset? ExpiresAt) : SocketCredential(Principal);

    /// <summary>
    /// How an authenticated request authenticated, or null when it did not. The same choice as
    /// <see cref="CookieAuthentication.Select"/>: a bearer token (header or, on <c>/ws</c>, the query) always decides;
    /// otherwise it was the cookie.
    /// </summary>
    public static SocketCredential? Of(HttpContext http)
    {
        if (http.User.Identity?.IsAuthenticated != true) return null;
        if (ApiKeyAuthenticationHandler.BearerToken(http.Request) is { Length: > 0 } token) return new Token(token, http.User);
        var ticket = http.Features.Get<IAuthenticateResultFeature>()?.AuthenticateResult;
        return new Cookie(http.User, ticket?.Properties?.ExpiresUtc);
    }
}

/// <summary>The outcome of checking a <see cref="SocketCredential"/>: still valid (with the principal as the database now has it), or why not.</summary>
public abstract record CredentialCheck
{
    public sealed record Valid(SocketCredential Credential) : CredentialCheck;

    public sealed record Invalid(string Reason) : CredentialCheck;
}

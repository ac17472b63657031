namespace Sutazai.Server.Chat;

/// <summary>
/// Which web pages may open a <c>/ws/*</c> socket. A browser attaches the site's cookie to a WebSocket handshake that
/// any page starts, and WebSockets have no CORS preflight, so without this rule any page the user visits could drive
/// their sockets (cross-site WebSocket hijacking). A handshake that carries an <c>Origin</c> header (every browser
/// sends one) must come from this server's own origin — <c>Sutazai:PublicUrl</c>, or the scheme, host and port the
/// request itself was sent to — or from an origin listed in <c>Sutazai:Http:CorsOrigins</c>. Clients that send no
/// <c>Origin</c> (CLI, SDKs) are not browsers: they cannot be made to send someone else's cookie.
/// </summary>
public static class SocketOrigins
{
    /// <summary>Null when the handshake may go on; otherwise the detail of the 403 that refuses it.</summary>
    public static string? Refusal(HttpRequest request, string publicUrl, IEnumerable<string> corsOrigins)
    {
        if (!request.Headers.TryGetValue("Origin", out var values)) return null;
        var presented = values.ToString();
        if (Normalize(presented) is { } origin)
        {
            if (origin == Normalize(publicUrl) || origin == Normalize($"{request.Scheme}://{request.Host.Value}")) return null;
            // A "*" entry does not normalize, so it never opens the sockets to every page on the web.
            if (corsOrigins.Any(allowed => Normalize(allowed) == origin)) return null;
        }
        return $"A page from '{presented}' may not open {request.Path}: only pages of this server ({Normalize(publicUrl) ?? publicUrl}) " +
            "or of an origin listed in Sutazai:Http:CorsOrigins may. Clients that are not browsers send no Origin header and authenticate with a bearer token.";
    }

    /// <summary>scheme://host[:port], lower case, default port left out; null for anything else ("null", a path, "*").</summary>
    private static string? Normalize(string value) =>
        Uri.TryCreate(value.Trim(), UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.Host.Length > 0
            ? uri.GetLeftPart(UriPartial.Authority).ToLowerInvariant()
            : null;
}

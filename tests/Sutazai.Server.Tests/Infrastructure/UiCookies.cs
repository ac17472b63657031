using System.Net.WebSockets;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Sutazai.Server.Identity;

namespace Sutazai.Server.Tests.Infrastructure;

public static class UiCookies
{
    /// <summary>
    /// The <c>Cookie</c> header a browser signed in to the web UI sends: the ticket the UI's sign-in issues
    /// (<see cref="CookieAuthentication.PrincipalFor"/>), protected with the app's own keys — without driving the form.
    /// </summary>
    public static async Task<string> ForAsync(TestApp app, Guid userId)
    {
        var user = await app.WithDbAsync(db => db.Users.AsNoTracking().SingleAsync(u => u.Id == userId));
        var options = app.Services.GetRequiredService<IOptionsMonitor<CookieAuthenticationOptions>>().Get(CookieAuthentication.SchemeName);
        var now = app.Services.GetRequiredService<TimeProvider>().GetUtcNow();
        var properties = new AuthenticationProperties { IsPersistent = true, IssuedUtc = now, ExpiresUtc = now + options.ExpireTimeSpan };
        var ticket = new AuthenticationTicket(CookieAuthentication.PrincipalFor(user), properties, CookieAuthentication.SchemeName);
        return $"{CookieAuthentication.CookieName}={options.TicketDataFormat.Protect(ticket)}";
    }
}

/// <summary>What the server answered a WebSocket handshake, and whether it went as far as accepting the upgrade.</summary>
public sealed record HandshakeAnswer(int Status, string? ContentType, string Body, bool Accepted);

public static class SocketHandshakes
{
    /// <summary>
    /// Sends a WebSocket handshake through the in-memory server and reads the answer as HTTP, so a refusal's status and
    /// ProblemDetails body can be asserted (the test WebSocket client only reports the status). An accepted upgrade is
    /// recorded and gets a socket whose peer hangs up at once.
    /// </summary>
    public static async Task<HandshakeAnswer> SendAsync(TestApp app, string path, string? origin = null, string? cookie = null, string? bearer = null)
    {
        _ = app.Client().BaseAddress; // starts the server
        HttpContext? handshake = null;
        var upgrade = new RecordingUpgrade(() => handshake!);
        var context = await app.Server.SendAsync(c =>
        {
            c.Request.Method = HttpMethods.Get;
            c.Request.Scheme = "http";
            c.Request.Host = new HostString("localhost");
            c.Request.Path = path;
            c.Request.Headers.Connection = "Upgrade";
            c.Request.Headers.Upgrade = "websocket";
            c.Request.Headers.SecWebSocketVersion = "13";
            c.Request.Headers.SecWebSocketKey = Convert.ToBase64String(Guid.NewGuid().ToByteArray());
            if (origin is not null) c.Request.Headers.Origin = origin;
            if (cookie is not null) c.Request.Headers.Cookie = cookie;
            if (bearer is not null) c.Request.Headers.Authorization = "Bearer " + bearer;
            c.Features.Set<IHttpWebSocketFeature>(upgrade);
            handshake = c;
        });
        var body = await new StreamReader(context.Response.Body).ReadToEndAsync();
        return new HandshakeAnswer(context.Response.StatusCode, context.Response.ContentType, body, upgrade.Accepted);
    }

    private sealed class RecordingUpgrade(Func<HttpContext> http) : IHttpWebSocketFeature
    {
        public bool Accepted { get; private set; }

        public bool IsWebSocketRequest => true;

        public Task<WebSocket> AcceptAsync(WebSocketAcceptContext context)
        {
            Accepted = true;
            http().Response.StatusCode = StatusCodes.Status101SwitchingProtocols;
            return Task.FromResult(WebSocket.CreateFromStream(new MemoryStream(), new WebSocketCreationOptions { IsServer = true }));
        }
    }
}

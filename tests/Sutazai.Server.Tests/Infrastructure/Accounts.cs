using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Sutazai.Server.Tests.Infrastructure;

public sealed record TestUser(Guid Id, string Username, string Email, string Password, string Role);

public sealed record Tokens(string AccessToken, string RefreshToken);

public static class Accounts
{
    public const string Password = "Kettle#Violet9!Run";

    public static string UniqueName(string prefix = "u") => $"{prefix}{Guid.NewGuid():N}"[..20];

    public static async Task<TestUser> RegisterAsync(HttpClient client, string? username = null, string password = Password)
    {
        username ??= UniqueName();
        var email = $"{username}@example.test";
        var response = await client.PostAsJsonAsync("/api/v1/auth/register", new { email, username, password });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var body = await response.ReadJsonAsync();
        return new TestUser(body.GetProperty("id").GetGuid(), username, email, password, body.GetProperty("role").GetString()!);
    }

    public static async Task<Tokens> LoginAsync(HttpClient client, string login, string password = Password)
    {
        var response = await client.PostAsJsonAsync("/api/v1/auth/login", new { login, password });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return ReadTokens(await response.ReadJsonAsync());
    }

    public static Tokens ReadTokens(JsonElement body) =>
        new(body.GetProperty("accessToken").GetString()!, body.GetProperty("refreshToken").GetString()!);

    public static async Task<(TestUser User, Tokens Tokens)> RegisterAndLoginAsync(HttpClient client)
    {
        var user = await RegisterAsync(client);
        return (user, await LoginAsync(client, user.Username));
    }
}

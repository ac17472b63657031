using System.CommandLine;
using System.Text.Json;

namespace Sutazai.Server.Cli;

/// <summary>What <c>sutazai login</c> keeps: the server's address and an API key for it.</summary>
public sealed record StoredLogin(string Url, string ApiKey, string? Username);

/// <summary>
/// The client commands' server and key: <c>--url</c> / <c>SUTAZAI_URL</c> / the stored login / http://localhost:5000,
/// and <c>--api-key</c> / <c>SUTAZAI_API_KEY</c> / the stored login. The login lives in the user's config folder
/// (<c>$XDG_CONFIG_HOME/sutazai/credentials.json</c>, else <c>~/.config/…</c>), readable by its owner only (0600).
/// </summary>
public sealed class Credentials
{
    public const string DefaultUrl = "http://localhost:5000";
    public const string UrlVariable = "SUTAZAI_URL";
    public const string KeyVariable = "SUTAZAI_API_KEY";

    public Option<string?> Url { get; } = new("--url") { Description = $"The server (default: {UrlVariable}, else the one sutazai login stored, else {DefaultUrl})." };

    public Option<string?> ApiKey { get; } = new("--api-key") { Description = $"API key (default: {KeyVariable}, else the one sutazai login stored)." };

    public void AddTo(Command command)
    {
        command.Options.Add(Url);
        command.Options.Add(ApiKey);
    }

    public static string FilePath
    {
        get
        {
            var config = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME") is { Length: > 0 } xdg
                ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config");
            return Path.Combine(config, "sutazai", "credentials.json");
        }
    }

    public static StoredLogin? Load()
    {
        try
        {
            return File.Exists(FilePath) ? JsonSerializer.Deserialize<StoredLogin>(File.ReadAllText(FilePath), CliConsole.Json) : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Writes the login so that only its owner can read it: 0700 folder, 0600 file, replaced atomically.</summary>
    public static void Save(StoredLogin login)
    {
        var dir = Path.GetDirectoryName(FilePath)!;
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(dir);
        else Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var temp = FilePath + "." + Guid.NewGuid().ToString("N") + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var writer = new StreamWriter(temp, options)) writer.Write(JsonSerializer.Serialize(login, CliConsole.Json));
        File.Move(temp, FilePath, overwrite: true);
    }

    public static bool Forget()
    {
        if (!File.Exists(FilePath)) return false;
        File.Delete(FilePath);
        return true;
    }

    public Uri ResolveUrl(ParseResult parse)
    {
        var url = parse.GetValue(Url) ?? Environment.GetEnvironmentVariable(UrlVariable) ?? Load()?.Url ?? DefaultUrl;
        return Uri.TryCreate(url.TrimEnd('/') + "/", UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"
            ? uri
            : throw new CliException(ExitCodes.Usage, $"'{url}' is not an http(s) address.");
    }

    /// <summary>A client for the server, with the key that belongs to it; a stored key is sent only to the server it was made for.</summary>
    public ServerClient Connect(ParseResult parse)
    {
        var url = ResolveUrl(parse);
        var stored = Load();
        var key = parse.GetValue(ApiKey) ?? Environment.GetEnvironmentVariable(KeyVariable)
            ?? (stored is not null && SameServer(stored.Url, url) ? stored.ApiKey : null)
            ?? throw new CliException(ExitCodes.Unauthorized, $"No API key for {url}: run sutazai login --url {url.ToString().TrimEnd('/')}, or give --api-key or {KeyVariable}.");
        return new ServerClient(url, key);
    }

    private static bool SameServer(string stored, Uri url) =>
        Uri.TryCreate(stored.TrimEnd('/') + "/", UriKind.Absolute, out var s) && Uri.Compare(s, url, UriComponents.SchemeAndServer | UriComponents.Path, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0;
}

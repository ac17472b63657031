namespace Sutazai.Server.Hosting;

/// <summary>
/// Where the host finds its own files. A published server (its <c>wwwroot</c> beside the binary) uses the binary's
/// folder as content root wherever it is started from — a service unit, a container with another working directory,
/// a shell in the data folder — so its web assets and <c>appsettings.json</c> are always its own. A build output
/// (<c>dotnet run</c>, tests) keeps the default, the working directory, where the static web assets manifest points at
/// the project's files. An explicit <c>--contentRoot</c> or <c>ASPNETCORE_CONTENTROOT</c>/<c>DOTNET_CONTENTROOT</c> wins. The
/// data directory is not affected: <c>Sutazai:DataDir</c> stays relative to the working directory (docs/operations.md).
/// </summary>
public static class HostPaths
{
    public static WebApplicationOptions Options(string[] args) => new()
    {
        Args = args,
        ContentRootPath = PublishedContentRoot(args, Environment.GetEnvironmentVariable, AppContext.BaseDirectory),
    };

    /// <summary>The binary's folder when it holds a published <c>wwwroot</c> and nothing names another content root; else null (the default).</summary>
    public static string? PublishedContentRoot(string[] args, Func<string, string?> environment, string baseDirectory)
    {
        if (args.Any(a => a.StartsWith("--contentRoot", StringComparison.OrdinalIgnoreCase) || a.StartsWith("--Hosting:contentRoot", StringComparison.OrdinalIgnoreCase)))
            return null;
        if (!string.IsNullOrEmpty(environment("ASPNETCORE_CONTENTROOT")) || !string.IsNullOrEmpty(environment("DOTNET_CONTENTROOT"))) return null;
        return Directory.Exists(Path.Join(baseDirectory, "wwwroot")) ? baseDirectory : null;
    }
}

using System.Diagnostics;
using System.Net;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Cli;

/// <summary>
/// The `dotnet tool` path users take: the server project packed as the `sutazai` tool package from this build,
/// `dotnet tool install -g --add-source <folder> sutazai` into a fresh tool home, and the installed command run from an
/// unrelated folder — its help, and `sutazai serve` answering /health and serving the web UI's assets.
/// </summary>
public sealed class ToolPackageTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sutazai-tool-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task PackedTool_InstallsWithDotnetTool_AndServesFromAnyFolder()
    {
        // The build this test run made (Debug or Release), packed without building again.
        var dll = SutazaiProcess.Dll;
        var configuration = new DirectoryInfo(Path.GetDirectoryName(dll)!).Parent!.Name;
        var project = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(dll)!, "..", "..", ".."));
        var packages = Path.Combine(_dir, "packages");
        var pack = await Commands.RunAsync("dotnet", ["pack", project, "-c", configuration, "--no-build", "-nologo", "-o", packages], _dir);
        Assert.True(pack.ExitCode == 0, pack.Output);
        var package = Assert.Single(Directory.GetFiles(packages, "sutazai.*.nupkg"));
        var version = Path.GetFileNameWithoutExtension(package)["sutazai.".Length..];

        // A fresh tool home (DOTNET_CLI_HOME), so -g installs there and not into this machine's tools.
        var home = Path.Combine(_dir, "home");
        var environment = new Dictionary<string, string> { ["DOTNET_CLI_HOME"] = home, ["DOTNET_NOLOGO"] = "1" };
        if (Environment.GetEnvironmentVariable("NUGET_PACKAGES") is null)
            environment["NUGET_PACKAGES"] = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var install = await Commands.RunAsync("dotnet", ["tool", "install", "-g", "--add-source", packages, "sutazai", "--version", version], _dir, environment);
        Assert.True(install.ExitCode == 0, install.Output);
        Assert.Contains($"Tool 'sutazai' (version '{version}') was successfully installed.", install.Output);
        var sutazai = Path.Combine(home, ".dotnet", "tools", "sutazai");
        Assert.True(File.Exists(sutazai), install.Output);

        var elsewhere = Directory.CreateDirectory(Path.Combine(_dir, "elsewhere")).FullName;
        var help = await Commands.RunAsync(sutazai, ["--help"], elsewhere, environment, 60);
        Assert.Equal(0, help.ExitCode);
        Assert.Contains("SutazAI: a self-hosted AI assistant.", help.Output);
        Assert.Contains("serve", help.Output);

        var port = SutazaiProcess.FreePort();
        var data = Path.Combine(_dir, "data");
        var serve = new ProcessStartInfo(sutazai) { WorkingDirectory = elsewhere, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in (string[])["serve", "--urls", $"http://127.0.0.1:{port}", $"--Sutazai:DataDir={data}", "--Sutazai:Inference:Ollama:AutoDetect=false"]) serve.ArgumentList.Add(arg);
        foreach (var (name, value) in environment) serve.Environment[name] = value;
        using var server = Process.Start(serve)!;
        server.OutputDataReceived += (_, _) => { };
        server.ErrorDataReceived += (_, _) => { };
        server.BeginOutputReadLine();
        server.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            HttpStatusCode? health = null;
            for (var i = 0; i < 300 && health != HttpStatusCode.OK && !server.HasExited; i++)
            {
                try
                {
                    health = (await http.GetAsync("/health")).StatusCode;
                }
                catch (HttpRequestException)
                {
                    await Task.Delay(200);
                }
            }
            Assert.Equal(HttpStatusCode.OK, health);
            // The UI's static assets come from the installed tool's own folder, not the working directory.
            var login = await http.GetAsync("/login");
            Assert.Equal(HttpStatusCode.OK, login.StatusCode);
            Assert.Contains("<html", await login.Content.ReadAsStringAsync(), StringComparison.OrdinalIgnoreCase);
            // Exactly the packaged files with their types: a server started elsewhere once answered 200 with an empty
            // body and no Content-Type, which browsers refuse under nosniff (an unstyled page where Blazor never starts).
            var installed = Directory.GetFiles(home, "*", SearchOption.AllDirectories).Where(f => f.Contains($"{Path.DirectorySeparatorChar}wwwroot{Path.DirectorySeparatorChar}", StringComparison.Ordinal)).ToList();
            foreach (var (path, type) in new[] { ("app.css", "text/css"), ("_framework/blazor.web.js", "text/javascript") })
            {
                var asset = await http.GetAsync("/" + path);
                Assert.Equal(HttpStatusCode.OK, asset.StatusCode);
                Assert.Equal(type, asset.Content.Headers.ContentType?.MediaType);
                var file = Assert.Single(installed, f => f.EndsWith(Path.DirectorySeparatorChar + path.Replace('/', Path.DirectorySeparatorChar), StringComparison.Ordinal));
                var expected = await File.ReadAllBytesAsync(file);
                Assert.NotEmpty(expected);
                Assert.Equal(expected, await asset.Content.ReadAsByteArrayAsync());
            }
            Assert.True(File.Exists(Path.Combine(data, "sutazai.db")));
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }
    }
}

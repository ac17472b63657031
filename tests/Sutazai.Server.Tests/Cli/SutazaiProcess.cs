using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace Sutazai.Server.Tests.Cli;

public sealed record CliResult(int ExitCode, string Output, string Error)
{
    public JsonElement Json => JsonDocument.Parse(Output).RootElement.Clone();

    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Output}\n--- stderr\n{Error}";
}

/// <summary>
/// The built <c>sutazai</c> program run as users run it: <c>dotnet sutazai.dll …</c> in a child process, on its own
/// data folder (<c>--Sutazai:DataDir=…</c>), its own home (for <c>sutazai login</c>'s file) and no Ollama probing.
/// </summary>
public sealed class SutazaiProcess
{
    public SutazaiProcess(string dataDir)
    {
        DataDir = dataDir;
        Home = Path.Combine(dataDir, "home");
        Directory.CreateDirectory(Home);
    }

    public string DataDir { get; }

    public string Home { get; }

    public Dictionary<string, string> Environment { get; } = new(StringComparer.Ordinal);

    /// <summary>The server's own build output, next to this test's build (the same folder the E2E tests start).</summary>
    public static string Dll
    {
        get
        {
            var here = AppContext.BaseDirectory; // tests/Sutazai.Server.Tests/bin/<Configuration>/net10.0/
            var configuration = new DirectoryInfo(here).Parent!.Name;
            var root = Path.GetFullPath(Path.Combine(here, "..", "..", "..", "..", ".."));
            var dll = Path.Combine(root, "src", "Sutazai.Server", "bin", configuration, "net10.0", "sutazai.dll");
            return File.Exists(dll) ? dll : throw new InvalidOperationException($"Build the server first: {dll} is missing.");
        }
    }

    public ProcessStartInfo StartInfo(IEnumerable<string> args, bool withDataDir = true)
    {
        // A test run started in the background (`./scripts/test.sh &`, nohup) ignores SIGINT, and children inherit
        // that: the Ctrl+C test would then send a signal nobody can catch. GNU env puts SIGINT back to its default
        // and execs dotnet in place (same pid).
        var start = new ProcessStartInfo(OperatingSystem.IsLinux() ? "/usr/bin/env" : "dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = DataDir,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        if (OperatingSystem.IsLinux()) foreach (var arg in (string[])["--default-signal=INT", "dotnet"]) start.ArgumentList.Add(arg);
        start.ArgumentList.Add(Dll);
        foreach (var arg in args) start.ArgumentList.Add(arg);
        if (withDataDir) start.ArgumentList.Add($"--Sutazai:DataDir={DataDir}");
        var env = start.Environment;
        env["ASPNETCORE_ENVIRONMENT"] = "Production";
        env["HOME"] = Home;
        env["XDG_CONFIG_HOME"] = Path.Combine(Home, ".config");
        env["Sutazai__Inference__Ollama__AutoDetect"] = "false";
        env.Remove("SUTAZAI_API_KEY");
        env.Remove("SUTAZAI_URL");
        foreach (var (name, value) in Environment) env[name] = value;
        return start;
    }

    public async Task<CliResult> RunAsync(IEnumerable<string> args, string? stdin = null, TimeSpan? timeout = null, bool withDataDir = true)
    {
        using var process = Process.Start(StartInfo(args, withDataDir)) ?? throw new InvalidOperationException("sutazai did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (stdin is not null) await process.StandardInput.WriteAsync(stdin);
        process.StandardInput.Close();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(90));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"sutazai {string.Join(' ', args)} did not finish:\n{await output}\n{await error}");
        }
        return new CliResult(process.ExitCode, await output, await error);
    }

    public Task<CliResult> RunAsync(params string[] args) => RunAsync(args, null);

    /// <summary>A loopback port nothing listens on now.</summary>
    public static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>
    /// Starts <c>sutazai serve</c> on 127.0.0.1:<paramref name="port"/> and returns it once <paramref name="readyPath"/>
    /// answers 200 (by default readiness: warmed up, so requests are served at once); fails the test with the server's stderr when it exits or never gets there.
    /// </summary>
    public async Task<Process> ServeAsync(int port, HttpClient http, string readyPath = "/health/ready", params string[] extraArgs)
    {
        var process = Process.Start(StartInfo(["serve", "--urls", $"http://127.0.0.1:{port}", .. extraArgs]))
            ?? throw new InvalidOperationException("sutazai did not start.");
        var errors = new StringBuilder();
        process.ErrorDataReceived += (_, e) => { lock (errors) errors.AppendLine(e.Data); };
        process.OutputDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (DateTime.UtcNow < deadline && !process.HasExited)
        {
            try
            {
                if ((await http.GetAsync(readyPath)).StatusCode == System.Net.HttpStatusCode.OK) return process;
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }
            await Task.Delay(200);
        }
        if (!process.HasExited) process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync();
        lock (errors) throw new Xunit.Sdk.XunitException($"sutazai serve never answered {readyPath} with 200:\n{errors}");
    }
}

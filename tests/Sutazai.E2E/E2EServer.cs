using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Sutazai.Inference.Gguf;

namespace Sutazai.E2E;

/// <summary>
/// The real server, as users run it: the built sutazai.dll in a child process on a free loopback port, with a
/// temporary data directory holding tiny deterministic GGUF models whose replies are known exactly.
/// </summary>
public sealed class E2EServer : IAsyncDisposable
{
    public const string Model = "tiny-deterministic";
    public const string Looping = "tiny-looping";
    public const string Xss = "tiny-xss";
    public const string ToolCaller = "tiny-tool-caller";

    /// <summary>What the tool-calling model answers any chat: a JSON tool call (docs/agents.md) for shell_run.</summary>
    public const string ToolCallReply = "{\"tool\":\"shell_run\",\"arguments\":{\"command\":\"echo hi\"}}";
    public const string Password = "Kettle#Violet9!Run";

    /// <summary>What the deterministic model answers any chat.</summary>
    public const string ChatReply = DeterministicModelSpec.DefaultExpectations.ChatReply;

    /// <summary>What the XSS model answers any chat: markup that must be shown as text, never run.</summary>
    public const string XssReply = "<img src=x onerror=alert(1)><script>alert(2)</script>";

    private readonly Process _process;
    private readonly StringWriter _log = new();

    private E2EServer(Process process, Uri baseUrl, string dataDir)
    {
        _process = process;
        BaseUrl = baseUrl;
        DataDir = dataDir;
    }

    public Uri BaseUrl { get; }

    public string DataDir { get; }

    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(30) };

    /// <param name="withModels">Write the tiny test models into the data folder.</param>
    /// <param name="environment">More environment variables for the server (settings as <c>Sutazai__…</c>).</param>
    /// <param name="serverDirectory">The folder holding sutazai.dll: the build output unless given (e.g. <see cref="PublishedDirectory"/>).</param>
    /// <param name="workingDirectory">Where the process starts: the server's folder unless given.</param>
    public static async Task<E2EServer> StartAsync(bool withModels = true, IReadOnlyDictionary<string, string>? environment = null,
        string? serverDirectory = null, Func<string, string>? workingDirectory = null)
    {
        var dataDir = Directory.CreateTempSubdirectory("sutazai-e2e-").FullName;
        if (withModels) WriteModels(dataDir);
        var port = FreePort();
        var serverDir = serverDirectory ?? ServerDirectory();
        var start = new ProcessStartInfo("dotnet", [Path.Combine(serverDir, "sutazai.dll"), "--urls", $"http://127.0.0.1:{port}"])
        {
            WorkingDirectory = workingDirectory?.Invoke(dataDir) ?? serverDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var env = start.Environment;
        env["ASPNETCORE_ENVIRONMENT"] = "Production";
        env["Sutazai__DataDir"] = dataDir;
        env["Sutazai__PublicUrl"] = $"http://127.0.0.1:{port}";
        env["Sutazai__RateLimits__AuthPerMinute"] = "100000";
        env["Sutazai__Inference__Ollama__AutoDetect"] = "false";
        env["Sutazai__Inference__DefaultModel"] = Model;
        env["Sutazai__Inference__LlamaCpp__ContextSize"] = "16384";
        env["Sutazai__Auth__MaxFailedAttempts"] = "3";
        env["Logging__LogLevel__Default"] = "Warning";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) env[name] = value;
        var process = Process.Start(start) ?? throw new InvalidOperationException("The server did not start.");
        var server = new E2EServer(process, new Uri($"http://127.0.0.1:{port}"), dataDir);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (server._log) server._log.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (server._log) server._log.WriteLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await server.WaitReadyAsync();
        return server;
    }

    public string Log
    {
        get
        {
            lock (_log) return _log.ToString();
        }
    }

    private async Task WaitReadyAsync()
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited) throw new InvalidOperationException("The server exited during start-up:\n" + Log);
            try
            {
                // Readiness, not liveness: warmed up (migrated), so the browser is served at once.
                using var response = await Http.GetAsync(new Uri(BaseUrl, "/health/ready"));
                if (response.StatusCode == HttpStatusCode.OK) return;
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }
            await Task.Delay(200);
        }
        throw new TimeoutException("The server did not answer /health/ready with 200 within 60 s:\n" + Log);
    }

    /// <summary>Registers an account through the API (the first one becomes admin) and returns its username.</summary>
    public async Task<string> RegisterAsync(string? username = null)
    {
        username ??= "u" + Guid.NewGuid().ToString("N")[..10];
        using var response = await Http.PostAsJsonAsync(new Uri(BaseUrl, "/api/v1/auth/register"),
            new { email = username + "@example.com", username, password = Password });
        if (response.StatusCode != HttpStatusCode.Created)
            throw new InvalidOperationException($"Registration failed: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return username;
    }

    public async Task<string> AccessTokenAsync(string username)
    {
        using var response = await Http.PostAsJsonAsync(new Uri(BaseUrl, "/api/v1/auth/login"), new { login = username, password = Password });
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("accessToken").GetString()!;
    }

    /// <summary>GET an API path as <paramref name="username"/> (bearer token), for asserting stored state.</summary>
    public async Task<JsonElement> GetJsonAsync(string username, string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(BaseUrl, path));
        request.Headers.Authorization = new("Bearer", await AccessTokenAsync(username));
        using var response = await Http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    /// <summary>PUT a JSON body to an API path as <paramref name="username"/> (bearer token); returns the status.</summary>
    public async Task<HttpStatusCode> PutJsonAsync(string username, string path, object body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, new Uri(BaseUrl, path)) { Content = JsonContent.Create(body) };
        request.Headers.Authorization = new("Bearer", await AccessTokenAsync(username));
        using var response = await Http.SendAsync(request);
        return response.StatusCode;
    }

    private static void WriteModels(string dataDir)
    {
        var models = Path.Combine(dataDir, "models");
        Directory.CreateDirectory(models);
        var spec = DeterministicModelSpec.Default();
        TinyModels.WriteDeterministic(Path.Combine(models, Model + ".gguf"), spec);
        // Answers "Hello! How can I help you? la la la …" for as long as it is let run (slow: 8 inert layers).
        var looping = new Dictionary<string, string>(spec.Successors, StringComparer.Ordinal) { ["?"] = "▁la" };
        TinyModels.WriteDeterministic(Path.Combine(models, Looping + ".gguf"), spec with { Successors = looping, ContextLength = 16384, BlockCount = 8 });
        // Answers with markup pieces, so the page must show a model's HTML as text.
        var xss = new Dictionary<string, string>(spec.Successors, StringComparer.Ordinal)
        {
            ["<0x0A>"] = "<img▁src=x▁onerror=alert(1)>",
            ["<img▁src=x▁onerror=alert(1)>"] = "<script>alert(2)</script>",
            ["<script>alert(2)</script>"] = "<|end|>",
        };
        TinyModels.WriteDeterministic(Path.Combine(models, Xss + ".gguf"),
            spec with { Pieces = [.. spec.Pieces, "<img▁src=x▁onerror=alert(1)>", "<script>alert(2)</script>"], Successors = xss });
        // Answers every chat with one JSON tool call, so an agent run makes a real shell_run call (and, being order-1,
        // asks for the same call again after the result: the run keeps waiting for approval until it is cancelled).
        var toolCall = ToolCallReply.Replace(' ', '▁');
        var tools = new Dictionary<string, string>(spec.Successors, StringComparer.Ordinal) { ["<0x0A>"] = toolCall, [toolCall] = "<|end|>" };
        TinyModels.WriteDeterministic(Path.Combine(models, ToolCaller + ".gguf"), spec with { Pieces = [.. spec.Pieces, toolCall], Successors = tools, ContextLength = 16384 });
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>The server's own build output (it carries the static web assets manifest), next to this test's build.</summary>
    private static string ServerDirectory()
    {
        var here = AppContext.BaseDirectory; // tests/Sutazai.E2E/bin/<Configuration>/net10.0/
        var configuration = new DirectoryInfo(here).Parent!.Name;
        var root = Path.GetFullPath(Path.Combine(here, "..", "..", "..", "..", ".."));
        var dir = Path.Combine(root, "src", "Sutazai.Server", "bin", configuration, "net10.0");
        return File.Exists(Path.Combine(dir, "sutazai.dll"))
            ? dir
            : throw new InvalidOperationException($"Build the server first: {dir} has no sutazai.dll.");
    }

    private static readonly SemaphoreSlim PublishLock = new(1, 1);
    private static string? _published;

    /// <summary>
    /// The server's published output (<c>dotnet publish</c>), as users deploy it: scripts/test.sh publishes once before
    /// the tests and names the folder in SUTAZAI_TEST_PUBLISHED; without it (a local run) the first caller publishes the
    /// already-built server into a temp folder.
    /// </summary>
    public static async Task<string> PublishedDirectory()
    {
        await PublishLock.WaitAsync();
        try
        {
            if (_published is not null) return _published;
            var given = Environment.GetEnvironmentVariable("SUTAZAI_TEST_PUBLISHED");
            if (!string.IsNullOrEmpty(given))
                return _published = File.Exists(Path.Combine(given, "sutazai.dll"))
                    ? given
                    : throw new InvalidOperationException($"SUTAZAI_TEST_PUBLISHED={given} holds no sutazai.dll.");
            var build = ServerDirectory();
            var configuration = new DirectoryInfo(build).Parent!.Name;
            var project = Path.GetFullPath(Path.Combine(build, "..", "..", ".."));
            var output = Directory.CreateTempSubdirectory("sutazai-published-").FullName;
            var publish = new ProcessStartInfo("dotnet", ["publish", project, "-c", configuration, "--no-build", "-o", output, "-nologo"])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            using var process = Process.Start(publish) ?? throw new InvalidOperationException("dotnet publish did not start.");
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            if (process.ExitCode != 0)
                throw new InvalidOperationException($"dotnet publish failed ({process.ExitCode}):\n{await stdout}\n{await stderr}");
            return _published = output;
        }
        finally
        {
            PublishLock.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
        try
        {
            Directory.Delete(DataDir, recursive: true);
        }
        catch (IOException)
        {
            // a file may still be closing; the OS temp cleaner takes what is left
        }
    }
}

using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Sutazai.Server.Tests.Cli;

public sealed class ServeCommandTests : IDisposable
{
    private readonly string _dataDir = Directory.CreateTempSubdirectory("sutazai-cli-serve-").FullName;

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dataDir, recursive: true);
        }
        catch (IOException)
        {
            // the server's files may still be closing
        }
    }

    [Fact]
    public async Task Serve_PassesHostArgumentsThrough_AndRoleWorkerServesNoApi()
    {
        var cli = new SutazaiProcess(_dataDir);
        Assert.Equal(0, (await cli.RunAsync("migrate")).ExitCode); // a worker waits for the schema; it never migrates
        int port;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        using var process = Process.Start(cli.StartInfo(["serve", "--role", "worker", "--urls", $"http://127.0.0.1:{port}", "--Sutazai:Tasks:Transport", "database"]))!;
        var errors = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEndAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
            var deadline = DateTime.UtcNow.AddSeconds(60);
            HttpStatusCode? health = null;
            while (health != HttpStatusCode.OK && DateTime.UtcNow < deadline && !process.HasExited)
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
            Assert.True(health == HttpStatusCode.OK, process.HasExited ? await errors + await output : "no /health");
            Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/api/v1/models")).StatusCode);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task AMistypedCommand_NeverStartsTheServer()
    {
        var result = await new SutazaiProcess(_dataDir).RunAsync("chta");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("Did you mean: chat?", result.Error);
        Assert.False(File.Exists(Path.Combine(_dataDir, "sutazai.db")));
    }

    [Fact]
    public async Task ABadRole_IsAUsageError()
    {
        var result = await new SutazaiProcess(_dataDir).RunAsync("serve", "--role", "boss");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("'boss'", result.Error);
    }
}

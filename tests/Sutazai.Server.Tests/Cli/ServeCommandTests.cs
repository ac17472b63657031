using System.Net;

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
        var port = SutazaiProcess.FreePort();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
        using var process = await cli.ServeAsync(port, http, "/health/ready", "--role", "worker", "--Sutazai:Tasks:Transport", "database");
        try
        {
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health")).StatusCode);
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

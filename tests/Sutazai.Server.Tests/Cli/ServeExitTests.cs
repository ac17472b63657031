namespace Sutazai.Server.Tests.Cli;

/// <summary>A server whose start-up fails in the background (the warm-up) still ends with a failing exit code.</summary>
public sealed class ServeExitTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sutazai-serve-exit-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task AnUnreachableDatabase_StopsTheServer_WithExitCode1_AndSaysWhy()
    {
        var closed = Sutazai.Inference.Tests.Fakes.FakeServer.ClosedPortRoot().Port;
        var cli = new SutazaiProcess(_dir);
        var result = await cli.RunAsync(["serve", "--urls", $"http://127.0.0.1:{SutazaiProcess.FreePort()}",
            "--Sutazai:Database:Provider=postgres", $"--Sutazai:Database:ConnectionString=Host=127.0.0.1;Port={closed};Username=postgres;Database=x",
            "--Sutazai:Database:Pool:TimeoutSeconds=2", "--Sutazai:Inference:Ollama:AutoDetect=false"], timeout: TimeSpan.FromMinutes(2));
        Assert.True(result.ExitCode == 1, result.ToString());
        Assert.Contains("Database migration failed on Npgsql.EntityFrameworkCore.PostgreSQL", result.Output + result.Error, StringComparison.Ordinal);
    }
}

using Sutazai.Server.Hosting;

namespace Sutazai.Server.Tests.Platform;

public sealed class HostPathsTests : IDisposable
{
    private readonly string _published = Directory.CreateTempSubdirectory("sutazai-published-").FullName;
    private readonly string _build = Directory.CreateTempSubdirectory("sutazai-build-").FullName;

    public HostPathsTests() => Directory.CreateDirectory(Path.Join(_published, "wwwroot"));

    public void Dispose()
    {
        Directory.Delete(_published, recursive: true);
        Directory.Delete(_build, recursive: true);
    }

    private static string? None(string _) => null;

    [Fact]
    public void PublishedOutput_UsesTheBinarysFolder_ABuildOutputKeepsTheDefault()
    {
        Assert.Equal(_published, HostPaths.PublishedContentRoot([], None, _published));
        Assert.Null(HostPaths.PublishedContentRoot([], None, _build));
    }

    [Theory]
    [InlineData("--contentRoot=/srv/sutazai")]
    [InlineData("--contentRoot")]
    [InlineData("--Hosting:contentRoot=/srv/sutazai")]
    public void AContentRootOnTheCommandLine_Wins(string argument) =>
        Assert.Null(HostPaths.PublishedContentRoot([argument, "/srv/sutazai"], None, _published));

    [Theory]
    [InlineData("ASPNETCORE_CONTENTROOT")]
    [InlineData("DOTNET_CONTENTROOT")]
    public void AContentRootInTheEnvironment_Wins(string variable) =>
        Assert.Null(HostPaths.PublishedContentRoot([], name => name == variable ? "/srv/sutazai" : null, _published));
}

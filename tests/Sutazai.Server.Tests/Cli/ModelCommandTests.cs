using Sutazai.Server.Tests.Inference;

namespace Sutazai.Server.Tests.Cli;

public sealed class ModelCommandTests : IDisposable
{
    private readonly string _dataDir = Directory.CreateTempSubdirectory("sutazai-cli-").FullName;

    public void Dispose() => Directory.Delete(_dataDir, recursive: true);

    [Fact]
    public async Task PullListRm_UseTheServersModelServices()
    {
        await using var files = await ModelFileServer.StartAsync();
        files.Put("cli-model.gguf");
        var cli = new SutazaiProcess(_dataDir);

        var pull = await cli.RunAsync("models", "pull", $"{files.BaseUrl}/cli-model.gguf");
        Assert.True(pull.ExitCode == 0, pull.ToString());
        Assert.Contains("100.0%", pull.Output);
        Assert.EndsWith("Pulled " + files.BaseUrl + "/cli-model.gguf as model 'cli-model'.\n", pull.Output);
        Assert.True(File.Exists(Path.Combine(_dataDir, "models", "cli-model.gguf")));

        var plain = await cli.RunAsync("models", "list");
        Assert.Equal(0, plain.ExitCode);
        Assert.Matches(@"cli-model\s+llamacpp\s+\S+ \S+\s+2048\s+llama\s+F32", plain.Output);

        var json = await cli.RunAsync("models", "list", "--json");
        var model = json.Json.GetProperty("models").EnumerateArray().Single();
        Assert.Equal("cli-model", model.GetProperty("id").GetString());
        Assert.Equal("llamacpp", model.GetProperty("provider").GetString());
        Assert.Equal(2048, model.GetProperty("contextLength").GetInt32());

        Assert.Equal(2, (await cli.RunAsync("models", "pull", "file:///etc/passwd")).ExitCode);
        var missing = await cli.RunAsync("models", "rm", "nope");
        Assert.Equal(3, missing.ExitCode);
        Assert.StartsWith("error: No local model 'nope'.", missing.Error);

        var rm = await cli.RunAsync("models", "rm", "cli-model");
        Assert.Equal(0, rm.ExitCode);
        Assert.False(File.Exists(Path.Combine(_dataDir, "models", "cli-model.gguf")));
        Assert.Empty((await cli.RunAsync("models", "list", "--json")).Json.GetProperty("models").EnumerateArray());
    }
}

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

    [Fact]
    public async Task Pull_ReadsHfTokenFromTheEnvironment_ForAGatedRepository()
    {
        await using var files = await ModelFileServer.StartAsync();
        files.Put("acme/gated-GGUF/resolve/main/gated-cli.gguf");
        files.Gate("acme/gated-GGUF/", "hf_cli_secret");
        var cli = new SutazaiProcess(_dataDir);
        string[] pull = ["models", "pull", "hf:acme/gated-GGUF/gated-cli.gguf", $"--Sutazai:Inference:Pull:HuggingFaceBaseUrl={files.BaseUrl}"];

        var refused = await cli.RunAsync(pull);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("HTTP 401 (Unauthorized). The file needs an access token (a gated or private repository): set HF_TOKEN", refused.Error);

        cli.Environment["HF_TOKEN"] = "hf_cli_secret";
        var pulled = await cli.RunAsync(pull);
        Assert.True(pulled.ExitCode == 0, pulled.ToString());
        Assert.EndsWith("Pulled hf:acme/gated-GGUF/gated-cli.gguf as model 'gated-cli'.\n", pulled.Output);
        Assert.DoesNotContain("hf_cli_secret", pulled.Output + pulled.Error);
        Assert.All(files.CdnAuthorizations, Assert.Null);
        Assert.True(File.Exists(Path.Combine(_dataDir, "models", "gated-cli.gguf")));
    }
}

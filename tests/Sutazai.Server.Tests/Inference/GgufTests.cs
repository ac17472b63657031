using Sutazai.Inference.Gguf;

namespace Sutazai.Server.Tests.Inference;

/// <summary>GGUF metadata is read from the header alone; bad files are refused with a clear message.</summary>
public sealed class GgufTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sutazai-gguf-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void WriterAndReader_RoundTripMetadataAndTensorInfo()
    {
        var path = Path.Combine(_dir, "roundtrip.gguf");
        new GgufWriter()
            .AddString("general.architecture", "llama")
            .AddString("general.name", "Round Trip")
            .AddUInt32("llama.context_length", 4096)
            .AddUInt32("general.file_type", 0)
            .AddFloat32("llama.attention.layer_norm_rms_epsilon", 1e-5f)
            .AddBool("tokenizer.ggml.add_bos_token", true)
            .AddArray("tokenizer.ggml.tokens", new[] { "<unk>", "<s>", "</s>", "héllo" })
            .AddArray("tokenizer.ggml.scores", new[] { 0f, -1f, -2f, -3.5f })
            .AddString("tokenizer.chat_template", "{{ messages }}")
            .AddTensor("token_embd.weight", new float[] { 1, 2, 3, 4, 5, 6 }, 3, 2)
            .WriteTo(path);

        var file = GgufReader.Read(path);
        Assert.Equal(3u, file.Version);
        Assert.Equal("llama", file.Architecture);
        Assert.Equal("Round Trip", file.Name);
        Assert.Equal(4096, file.ContextLength);
        Assert.Equal("F32", file.Quantization);
        Assert.Equal("{{ messages }}", file.ChatTemplate);
        Assert.Equal(true, file.GetBool("tokenizer.ggml.add_bos_token"));
        Assert.Equal(4, file.VocabularySize);
        Assert.Equal(["<unk>", "<s>", "</s>", "héllo"], file.GetArray("tokenizer.ggml.tokens")!.AsStrings()!);
        var tensor = Assert.Single(file.Tensors);
        Assert.Equal("token_embd.weight", tensor.Name);
        Assert.Equal([3L, 2L], tensor.Dimensions);
        Assert.Equal(6, file.ParameterCount);
        Assert.Equal(24, file.TensorDataBytes);
        Assert.True(GgufReader.HasGgufMagic(path));
    }

    [Fact]
    public void GeneratedDeterministicModel_DescribesItself()
    {
        var path = Path.Combine(_dir, "tiny.gguf");
        var info = TinyModels.WriteDeterministic(path, DeterministicModelSpec.Default());
        var file = GgufReader.Read(path);
        Assert.Equal("llama", file.Architecture);
        Assert.Equal(2048, file.ContextLength);
        Assert.Equal(info.Tokens.Count, file.VocabularySize);
        Assert.Equal(DeterministicModelSpec.PhiStyleChatTemplate, file.ChatTemplate);
        Assert.Equal(new FileInfo(path).Length, info.FileBytes);
    }

    [Fact]
    public void NotAGgufFile_IsRefusedWithAClearMessage()
    {
        var path = Path.Combine(_dir, "page.gguf");
        File.WriteAllText(path, "<html><body>404</body></html>");
        Assert.False(GgufReader.HasGgufMagic(path));
        var error = Assert.Throws<InvalidDataException>(() => GgufReader.Read(path));
        Assert.Contains("GGUF", error.Message);
    }

    [Fact]
    public void TruncatedFile_IsRefused()
    {
        var path = Path.Combine(_dir, "full.gguf");
        TinyModels.WriteDeterministic(path, DeterministicModelSpec.Default());
        var bytes = File.ReadAllBytes(path);
        var cut = Path.Combine(_dir, "cut.gguf");
        File.WriteAllBytes(cut, bytes[..200]);
        Assert.Throws<InvalidDataException>(() => GgufReader.Read(cut));
    }
}

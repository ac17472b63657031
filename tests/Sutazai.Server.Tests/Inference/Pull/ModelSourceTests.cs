using Sutazai.Inference.Pull;

namespace Sutazai.Inference.Tests.Pull;

public sealed class ModelSourceTests
{
    private const string HfShape = "Hugging Face reference must look like hf:owner/repo/path/to/file.gguf[@revision].";
    private const string Traversal = "Hugging Face reference must not contain '.' or '..' path segments.";
    private const string UrlTraversal = "URL path must not contain '.' or '..' segments.";

    [Fact]
    public void Parse_HuggingFaceReference_BuildsResolveUrlOnMain()
    {
        var source = ModelSource.Parse("hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF/tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf");

        Assert.Equal(ModelSourceKind.HuggingFace, source.Kind);
        Assert.Equal(
            "https://huggingface.co/TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF/resolve/main/tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf",
            source.DownloadUrl!.AbsoluteUri);
        Assert.Equal("TheBloke", source.Owner);
        Assert.Equal("TinyLlama-1.1B-Chat-v1.0-GGUF", source.Repository);
        Assert.Equal("tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf", source.FilePath);
        Assert.Equal("main", source.Revision);
        Assert.Equal("tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf", source.FileName);
    }

    [Fact]
    public void Parse_HuggingFaceReferenceWithRevisionAndSubfolder_EscapesEachPart()
    {
        var source = ModelSource.Parse("  HF:org/repo/sub dir/model.gguf@refs/pr/1  ");

        Assert.Equal("https://huggingface.co/org/repo/resolve/refs%2Fpr%2F1/sub%20dir/model.gguf", source.DownloadUrl!.AbsoluteUri);
        Assert.Equal("refs/pr/1", source.Revision);
        Assert.Equal("sub dir/model.gguf", source.FilePath);
        Assert.Equal("model.gguf", source.FileName);
        Assert.Equal("HF:org/repo/sub dir/model.gguf@refs/pr/1", source.Reference);
    }

    [Fact]
    public void Parse_HuggingFaceReference_UsesConfiguredBaseUrl()
    {
        var source = ModelSource.Parse("hf:o/r/f.gguf@v1.0", new Uri("http://127.0.0.1:5000/mirror/"));

        Assert.Equal("http://127.0.0.1:5000/mirror/o/r/resolve/v1.0/f.gguf", source.DownloadUrl!.AbsoluteUri);
        Assert.Equal("v1.0", source.Revision);
    }

    [Fact]
    public void Parse_HttpsUrl_KeepsUrlAndTakesFileNameFromPath()
    {
        var source = ModelSource.Parse("https://example.com/models/tiny%20llama.gguf?download=true");

        Assert.Equal(ModelSourceKind.Http, source.Kind);
        Assert.Equal("https://example.com/models/tiny%20llama.gguf?download=true", source.DownloadUrl!.AbsoluteUri);
        Assert.Equal("tiny llama.gguf", source.FileName);
        Assert.Null(source.Owner);
        Assert.Null(source.Revision);
    }

    [Fact]
    public void Parse_HttpUrlWithoutPath_HasNoFileName()
    {
        var source = ModelSource.Parse("http://10.0.0.5:8080");

        Assert.Equal(ModelSourceKind.Http, source.Kind);
        Assert.Equal("http://10.0.0.5:8080/", source.DownloadUrl!.AbsoluteUri);
        Assert.Null(source.FileName);
    }

    [Theory]
    [InlineData("llama3.2:1b")]
    [InlineData("tinyllama")]
    [InlineData("library/llama3:latest")]
    [InlineData("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M")]
    public void Parse_OllamaName_IsClassifiedWithoutUrl(string reference)
    {
        var source = ModelSource.Parse(reference);

        Assert.Equal(ModelSourceKind.Ollama, source.Kind);
        Assert.Equal(reference, source.Reference);
        Assert.Null(source.DownloadUrl);
        Assert.Null(source.FileName);
    }

    [Theory]
    [InlineData("", "Model reference is empty.")]
    [InlineData("   ", "Model reference is empty.")]
    [InlineData("tiny\u0001llama", "Model reference contains control characters.")]
    [InlineData("hf:owner", HfShape)]
    [InlineData("hf:owner/repo", HfShape)]
    [InlineData("hf:owner/repo/", HfShape)]
    [InlineData("hf://owner/repo/f.gguf", HfShape)]
    [InlineData("hf:owner/../file.gguf", Traversal)]
    [InlineData("hf:o/r/../../etc/passwd", Traversal)]
    [InlineData("hf:o/r/./f.gguf", Traversal)]
    [InlineData("hf:o/r/f.gguf@", "Hugging Face revision after '@' is empty.")]
    [InlineData("hf:o/r/f.gguf@a@b", "Hugging Face reference may contain '@' only once, before the revision.")]
    [InlineData("hf:o/r/f.gguf@../main", "Hugging Face revision '../main' is not valid.")]
    [InlineData("hf:o w/r/f.gguf", "Hugging Face repository 'o w/r' is not valid.")]
    [InlineData("hf:o/r/a\\b.gguf", "Hugging Face file path must not contain '\\'.")]
    [InlineData("file:///etc/passwd", "Unsupported scheme 'file'; use hf:owner/repo/file.gguf, an http(s) URL or an Ollama model name.")]
    [InlineData("FTP://example.com/m.gguf", "Unsupported scheme 'ftp'; use hf:owner/repo/file.gguf, an http(s) URL or an Ollama model name.")]
    [InlineData("http://", "'http://' is not a valid URL.")]
    [InlineData("http:example.com/m.gguf", "'http:example.com/m.gguf' is not a valid URL.")]
    [InlineData("https://example.com/a/../m.gguf", UrlTraversal)]
    [InlineData("https://example.com/a/%2e%2e/m.gguf", UrlTraversal)]
    [InlineData("https://user:secret@example.com/m.gguf", "URL must not contain credentials.")]
    [InlineData("model.gguf", "'model.gguf' looks like a local file; use hf:owner/repo/file.gguf or an http(s) URL.")]
    [InlineData("C:\\models\\x.gguf", "'C:\\models\\x.gguf' looks like a local file; use hf:owner/repo/file.gguf or an http(s) URL.")]
    [InlineData("../secrets", "Model reference must not contain '..'.")]
    [InlineData("llama 3", "'llama 3' is not a Hugging Face reference (hf:owner/repo/file.gguf), an http(s) URL or an Ollama model name.")]
    public void TryParse_InvalidReference_ExplainsWhy(string reference, string expectedError)
    {
        var parsed = ModelSource.TryParse(reference, null, out var source, out var error);

        Assert.False(parsed);
        Assert.Null(source);
        Assert.Equal(expectedError, error);
    }

    [Fact]
    public void Parse_InvalidReference_ThrowsFormatExceptionWithTheSameMessage()
    {
        var exception = Assert.Throws<FormatException>(() => ModelSource.Parse("hf:owner/repo"));

        Assert.Equal(HfShape, exception.Message);
    }

    [Fact]
    public void TryParse_RelativeBaseUrl_IsRejected()
    {
        var exception = Assert.Throws<ArgumentException>(
            () => ModelSource.TryParse("hf:o/r/f.gguf", new Uri("/mirror", UriKind.Relative), out _, out _));

        Assert.Equal("The Hugging Face base URL must be an absolute http:// or https:// URL. (Parameter 'huggingFaceBaseUrl')", exception.Message);
    }
}

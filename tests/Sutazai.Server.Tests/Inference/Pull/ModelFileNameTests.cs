using Sutazai.Inference.Pull;

namespace Sutazai.Inference.Tests.Pull;

public sealed class ModelFileNameTests
{
    [Theory]
    [InlineData("tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf")]
    [InlineData("Model.GGUF")]
    [InlineData("llama 3 (8B).gguf")]
    public void IsValid_PlainGgufName_IsAccepted(string name)
    {
        Assert.True(ModelFileName.IsValid(name, out var error));
        Assert.Null(error);
    }

    [Fact]
    public void IsValid_NameOfExactly255Bytes_IsAccepted()
    {
        Assert.True(ModelFileName.IsValid(new string('a', 250) + ".gguf", out var error));
        Assert.Null(error);
    }

    [Theory]
    [InlineData(null, "File name is empty.")]
    [InlineData("", "File name is empty.")]
    [InlineData("tiny\n.gguf", "File name must not contain control characters.")]
    [InlineData("models/tiny.gguf", "File name must not contain path separators.")]
    [InlineData("..\\tiny.gguf", "File name must not contain path separators.")]
    [InlineData("..gguf", "File name must not contain '..'.")]
    [InlineData("tiny..gguf", "File name must not contain '..'.")]
    [InlineData(".hidden.gguf", "File name must not start with '.'.")]
    [InlineData(" tiny.gguf", "File name must not start or end with whitespace.")]
    [InlineData("tiny?.gguf", "File name must not contain any of < > : \" | ? *.")]
    [InlineData("tiny.bin", "File name must end in .gguf.")]
    [InlineData("tiny.gguf.part", "File name must end in .gguf.")]
    [InlineData("CON.gguf", "File name 'CON.gguf' is reserved on Windows.")]
    [InlineData("lpt1.q4.gguf", "File name 'lpt1.q4.gguf' is reserved on Windows.")]
    public void IsValid_UnsafeName_IsRejectedWithReason(string? name, string expectedError)
    {
        Assert.False(ModelFileName.IsValid(name, out var error));
        Assert.Equal(expectedError, error);
    }

    [Fact]
    public void IsValid_NameOver255Bytes_IsRejected()
    {
        // 'é' is two bytes in UTF-8: 126 of them plus ".gguf" is 257 bytes in 131 characters.
        Assert.False(ModelFileName.IsValid(new string('é', 126) + ".gguf", out var error));
        Assert.Equal("File name is longer than 255 bytes.", error);
    }

    [Theory]
    [InlineData("../../etc/passwd", "_._etc_passwd.gguf")]
    [InlineData("tinyllama.Q4_K_M.gguf", "tinyllama.Q4_K_M.gguf")]
    [InlineData("model", "model.gguf")]
    [InlineData("", "model.gguf")]
    [InlineData(null, "model.gguf")]
    [InlineData(".gguf", "model.gguf")]
    [InlineData("CON", "_CON.gguf")]
    [InlineData(".hidden.gguf", "hidden.gguf")]
    [InlineData("a<b>:c.gguf", "a_b__c.gguf")]
    [InlineData(" my model?.GGUF ", "my model_.gguf")]
    [InlineData("line\nbreak.gguf", "line_break.gguf")]
    [InlineData("C:\\models\\x.gguf", "C__models_x.gguf")]
    public void Sanitize_SuggestedName_BecomesValidName(string? suggested, string expected)
    {
        var sanitized = ModelFileName.Sanitize(suggested);

        Assert.Equal(expected, sanitized);
        Assert.True(ModelFileName.IsValid(sanitized, out var error), error);
    }

    [Fact]
    public void Sanitize_LongName_IsShortenedTo255BytesKeepingExtension()
    {
        var sanitized = ModelFileName.Sanitize(new string('x', 300));

        Assert.Equal(new string('x', 250) + ".gguf", sanitized);
    }
}

namespace Sutazai.Knowledge.Chunking;

/// <summary>
/// A chunk ready for embedding. <see cref="Text"/> is the chunk's own text, without the heading;
/// <see cref="Heading"/> and <see cref="Page"/> come from the section it was cut from. <see cref="TokenCount"/> is the
/// chunker's token counter applied to <see cref="Text"/>.
/// </summary>
/// <param name="Index">0-based position over the whole document.</param>
public sealed record ChunkDraft(int Index, string Text, string? Heading, int? Page, int TokenCount)
{
    /// <summary>The text to embed: the heading path, a blank line and the text; just the text without a heading.</summary>
    public string EmbeddingText => Heading is null ? Text : Heading + "\n\n" + Text;
}

/// <summary>Sizes for <see cref="TextChunker"/>, in tokens of its counter.</summary>
public sealed class ChunkingOptions
{
    /// <summary>Most tokens per chunk (default 512). Only a single word longer than this makes a bigger chunk.</summary>
    public int TargetTokens { get; init; } = 512;

    /// <summary>Tokens at most repeated from the end of the previous chunk of the same section (default 64); must be below <see cref="TargetTokens"/>.</summary>
    public int OverlapTokens { get; init; } = 64;
}

/// <summary>Token counters for <see cref="TextChunker"/>.</summary>
public static class TokenCounters
{
    /// <summary>
    /// A fast approximation of sub-word tokenizers (BPE, WordPiece): the text is cut into word pieces — each run of
    /// letters or digits is one piece, each other non-whitespace character is one piece — and the count is
    /// ceil(pieces × 1.3), allowing for words that split into several tokens. Joining texts with whitespace never
    /// merges pieces, so the count of a joined text is at most the sum of its parts' counts.
    /// </summary>
    public static int Approximate(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var pieces = 0;
        var inWord = false;
        foreach (var c in text)
        {
            if (char.IsLetterOrDigit(c))
            {
                if (!inWord) pieces++;
                inWord = true;
            }
            else
            {
                inWord = false;
                if (!char.IsWhiteSpace(c) && !char.IsLowSurrogate(c)) pieces++;
            }
        }

        return (int)Math.Ceiling(pieces * 1.3);
    }
}

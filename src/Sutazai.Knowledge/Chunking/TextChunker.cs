using System.Text.RegularExpressions;
using Sutazai.Knowledge.Extraction;

namespace Sutazai.Knowledge.Chunking;

/// <summary>
/// Cuts extracted sections into chunks of at most <see cref="ChunkingOptions.TargetTokens"/> tokens. Chunks never span
/// sections, so each carries its section's heading path and page (the heading is not added to <see cref="ChunkDraft.Text"/>;
/// use <see cref="ChunkDraft.EmbeddingText"/> to embed with it). A section is split at paragraphs (blank lines);
/// a paragraph too big for one chunk at sentence ends (".", "!" or "?" followed by whitespace); a sentence too big at
/// whitespace — never inside a word. Pieces are packed greedily; each chunk after the first of a section starts with
/// the last words of the previous chunk, up to <see cref="ChunkingOptions.OverlapTokens"/> tokens, cut at a word
/// boundary. The output is deterministic. Tokens are counted by the injected counter (default
/// <see cref="TokenCounters.Approximate"/>), assumed not to grow when texts are joined by whitespace.
/// </summary>
public sealed partial class TextChunker
{
    private readonly Func<string, int> _countTokens;
    private readonly ChunkingOptions _options;

    public TextChunker(ChunkingOptions? options = null, Func<string, int>? countTokens = null)
    {
        _options = options ?? new ChunkingOptions();
        if (_options.TargetTokens < 1) throw new ArgumentOutOfRangeException(nameof(options), "TargetTokens must be at least 1.");
        if (_options.OverlapTokens < 0 || _options.OverlapTokens >= _options.TargetTokens)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "OverlapTokens must be at least 0 and below TargetTokens.");
        }

        _countTokens = countTokens ?? TokenCounters.Approximate;
    }

    [GeneratedRegex(@"\n[ \t]*\n\s*")]
    private static partial Regex ParagraphBreak();

    [GeneratedRegex(@"(?<=[.!?][""'”’)\]]*)\s+")]
    private static partial Regex SentenceBreak();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    [GeneratedRegex(@"\S+")]
    private static partial Regex WordPattern();

    /// <summary>Chunks every section of <paramref name="document"/>, numbering chunks from 0.</summary>
    public IReadOnlyList<ChunkDraft> Chunk(ExtractedDocument document)
    {
        ArgumentNullException.ThrowIfNull(document);
        return Chunk(document.Sections);
    }

    /// <summary>Chunks <paramref name="sections"/> in order, numbering chunks from 0.</summary>
    public IReadOnlyList<ChunkDraft> Chunk(IEnumerable<ExtractedSection> sections)
    {
        ArgumentNullException.ThrowIfNull(sections);
        var chunks = new List<ChunkDraft>();
        foreach (var section in sections) ChunkSection(section, chunks);
        return chunks;
    }

    private void ChunkSection(ExtractedSection section, List<ChunkDraft> chunks)
    {
        var pieces = new List<Piece>();
        foreach (var paragraph in ParagraphBreak().Split(section.Text.Trim()))
        {
            if (paragraph.Trim().Length > 0) AddPieces(paragraph.Trim(), "\n\n", pieces);
        }

        string? current = null;
        var currentTokens = 0;
        foreach (var piece in pieces)
        {
            if (current is null)
            {
                current = piece.Text;
                currentTokens = piece.Tokens;
                continue;
            }

            if (currentTokens + piece.Tokens <= _options.TargetTokens)
            {
                current += piece.Separator + piece.Text;
                currentTokens += piece.Tokens;
                continue;
            }

            Emit(current, section, chunks);
            var overlap = Overlap(current, Math.Min(_options.OverlapTokens, _options.TargetTokens - piece.Tokens));
            current = overlap.Text.Length == 0 ? piece.Text : overlap.Text + piece.Separator + piece.Text;
            currentTokens = overlap.Tokens + piece.Tokens;
        }

        if (current is not null) Emit(current, section, chunks);
    }

    private void Emit(string text, ExtractedSection section, List<ChunkDraft> chunks) =>
        chunks.Add(new ChunkDraft(chunks.Count, text, section.Heading, section.Page, _countTokens(text)));

    /// <summary>Splits <paramref name="text"/> into pieces that each fit a chunk, down to single words.</summary>
    private void AddPieces(string text, string separator, List<Piece> pieces)
    {
        var tokens = _countTokens(text);
        if (tokens <= _options.TargetTokens)
        {
            pieces.Add(new Piece(text, separator, tokens));
            return;
        }

        var sentences = SentenceBreak().Split(text);
        if (sentences.Length > 1)
        {
            for (var i = 0; i < sentences.Length; i++) AddPieces(sentences[i], i == 0 ? separator : " ", pieces);
            return;
        }

        var words = Whitespace().Split(text);
        for (var i = 0; i < words.Length; i++)
        {
            if (words[i].Length > 0) pieces.Add(new Piece(words[i], i == 0 ? separator : " ", _countTokens(words[i])));
        }
    }

    /// <summary>The longest word-aligned suffix of <paramref name="text"/> with at most <paramref name="budget"/> tokens.</summary>
    private (string Text, int Tokens) Overlap(string text, int budget)
    {
        if (budget <= 0) return ("", 0);
        var words = WordPattern().Matches(text);
        var start = text.Length;
        var tokens = 0;
        for (var i = words.Count - 1; i >= 0; i--)
        {
            var wordTokens = _countTokens(words[i].Value);
            if (tokens + wordTokens > budget) break;
            tokens += wordTokens;
            start = words[i].Index;
        }

        return start == text.Length ? ("", 0) : (text[start..], tokens);
    }

    private readonly record struct Piece(string Text, string Separator, int Tokens);
}

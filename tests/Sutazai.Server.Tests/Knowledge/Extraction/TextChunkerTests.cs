using System.Text;
using Sutazai.Knowledge.Chunking;
using Sutazai.Knowledge.Extraction;

namespace Sutazai.Server.Tests.Knowledge.Extraction;

public class TextChunkerTests
{
    private static int CountWords(string text) => text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length;

    private static TextChunker WordChunker(int target, int overlap) =>
        new(new ChunkingOptions { TargetTokens = target, OverlapTokens = overlap }, CountWords);

    [Fact]
    public void Approximate_counter_counts_word_pieces_times_1_3()
    {
        Assert.Equal(0, TokenCounters.Approximate(""));
        Assert.Equal(6, TokenCounters.Approximate("Hello, world."));
        Assert.Equal(3, TokenCounters.Approximate("one two"));
        Assert.Equal(13, TokenCounters.Approximate("a b c d e f g h i j"));
    }

    [Fact]
    public void A_small_section_is_one_chunk_with_its_heading_and_page()
    {
        var chunks = new TextChunker().Chunk([new ExtractedSection("Short text.", "Install > Linux", 3)]);

        Assert.Equal([new ChunkDraft(0, "Short text.", "Install > Linux", 3, 4)], chunks);
        Assert.Equal("Install > Linux\n\nShort text.", chunks[0].EmbeddingText);
    }

    [Fact]
    public void Splits_at_paragraphs_with_overlap()
    {
        var chunks = WordChunker(10, 3).Chunk([new ExtractedSection("a1 a2 a3 a4 a5 a6.\n\nb1 b2 b3 b4 b5 b6.", "H")]);

        Assert.Equal(
        [
            new ChunkDraft(0, "a1 a2 a3 a4 a5 a6.", "H", null, 6),
            new ChunkDraft(1, "a4 a5 a6.\n\nb1 b2 b3 b4 b5 b6.", "H", null, 9),
        ], chunks);
    }

    [Fact]
    public void Splits_long_paragraphs_at_sentences()
    {
        var chunks = WordChunker(8, 2).Chunk([new ExtractedSection("One two three four five. Six seven eight nine ten! Eleven twelve thirteen fourteen fifteen?")]);

        Assert.Equal(
        [
            new ChunkDraft(0, "One two three four five.", null, null, 5),
            new ChunkDraft(1, "four five. Six seven eight nine ten!", null, null, 7),
            new ChunkDraft(2, "nine ten! Eleven twelve thirteen fourteen fifteen?", null, null, 7),
        ], chunks);
    }

    [Fact]
    public void Splits_long_sentences_at_words()
    {
        var chunks = WordChunker(4, 1).Chunk([new ExtractedSection("w1 w2 w3 w4 w5 w6 w7 w8 w9", null, 7)]);

        Assert.Equal(
        [
            new ChunkDraft(0, "w1 w2 w3 w4", null, 7, 4),
            new ChunkDraft(1, "w4 w5 w6 w7", null, 7, 4),
            new ChunkDraft(2, "w7 w8 w9", null, 7, 3),
        ], chunks);
    }

    [Fact]
    public void Chunks_never_span_sections_and_are_numbered_over_the_document()
    {
        var document = new ExtractedDocument("T",
        [
            new ExtractedSection("p1 a b", null, 1),
            new ExtractedSection("   "),
            new ExtractedSection("p2 c d", "Second", 2),
        ]);

        var chunks = WordChunker(100, 10).Chunk(document);

        Assert.Equal([new ChunkDraft(0, "p1 a b", null, 1, 3), new ChunkDraft(1, "p2 c d", "Second", 2, 3)], chunks);
    }

    [Fact]
    public void Rejects_overlap_not_below_target()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TextChunker(new ChunkingOptions { TargetTokens = 64, OverlapTokens = 64 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TextChunker(new ChunkingOptions { TargetTokens = 0, OverlapTokens = 0 }));
    }

    [Fact]
    public void Large_sections_chunk_within_bounds_with_overlap_whole_words_and_deterministically()
    {
        var words = new List<string>();
        var text = new StringBuilder();
        for (var i = 0; i < 6000; i++)
        {
            var word = $"word{i}" + (i % 13 == 12 ? "." : i % 29 == 0 ? "," : "");
            words.Add(word);
            text.Append(word).Append(i % 91 == 90 ? "\n\n" : " ");
        }

        var section = new ExtractedSection(text.ToString(), "Guide > Big", 4);
        var chunker = new TextChunker();

        var chunks = chunker.Chunk([section]);

        Assert.Equal(chunks, new TextChunker().Chunk([section]));
        Assert.True(chunks.Count > 10, $"only {chunks.Count} chunks");
        var previousEnd = -1;
        for (var c = 0; c < chunks.Count; c++)
        {
            var chunk = chunks[c];
            Assert.Equal(c, chunk.Index);
            Assert.Equal("Guide > Big", chunk.Heading);
            Assert.Equal(4, chunk.Page);
            Assert.Equal(TokenCounters.Approximate(chunk.Text), chunk.TokenCount);
            Assert.InRange(chunk.TokenCount, 1, 512);

            // Every chunk is a contiguous run of whole source words.
            var chunkWords = chunk.Text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            var start = words.IndexOf(chunkWords[0]);
            Assert.True(start >= 0, $"chunk {c} starts inside a word: {chunkWords[0]}");
            Assert.Equal(words.Skip(start).Take(chunkWords.Length), chunkWords);

            if (c == 0) Assert.Equal(0, start);
            else
            {
                // Overlap: the chunk starts before the previous one ended, by at most 64 tokens.
                Assert.True(start <= previousEnd, $"chunk {c} has no overlap");
                var overlap = string.Join(' ', words.Skip(start).Take(previousEnd - start + 1));
                Assert.InRange(TokenCounters.Approximate(overlap), 1, 64);
            }

            previousEnd = start + chunkWords.Length - 1;
            Assert.True(chunk.TokenCount > 300 || c == chunks.Count - 1, $"chunk {c} is only {chunk.TokenCount} tokens");
        }

        Assert.Equal(words.Count - 1, previousEnd);
    }
}

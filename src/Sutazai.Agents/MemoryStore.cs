using System.ComponentModel;
using System.Runtime.InteropServices;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.AI;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Agents.Tools;

namespace Sutazai.Agents;

/// <summary>
/// A user's long-term memory, as Letta/MemGPT keeps it: core blocks always in the memory agent's context, archival
/// passages found by meaning (embeddings), and recall of the user's past chat messages.
/// </summary>
public sealed class MemoryStore(AppDbContext db, IEmbeddingGenerator<string, Embedding<float>> embedder, TimeProvider time)
{
    public static readonly IReadOnlyDictionary<string, string> DefaultBlocks = new Dictionary<string, string>
    {
        ["persona"] = "I am JARVIS, the user's personal assistant in SutazAI. I am helpful, concise and honest.",
        ["human"] = "",
    };

    public const int BlockLimit = 8000;

    public async Task<IReadOnlyList<MemoryBlock>> BlocksAsync(Guid userId, CancellationToken ct)
    {
        var stored = await db.MemoryBlocks.AsNoTracking().Where(b => b.UserId == userId).ToListAsync(ct);
        return DefaultBlocks.Keys
            .Select(label => stored.FirstOrDefault(b => b.Label == label) ?? new MemoryBlock { UserId = userId, Label = label, Value = DefaultBlocks[label] })
            .ToList();
    }

    public async Task<string> CoreMemoryPromptAsync(Guid userId, CancellationToken ct)
    {
        var blocks = await BlocksAsync(userId, ct);
        return "Core memory:\n" + string.Join("\n", blocks.Select(b => $"<{b.Label}>\n{b.Value}\n</{b.Label}>"));
    }

    /// <summary>Sets a block; false when the label is unknown. Throws <see cref="ToolException"/> past the size limit.</summary>
    public async Task<bool> SetBlockAsync(Guid userId, string label, string value, CancellationToken ct)
    {
        if (!DefaultBlocks.ContainsKey(label)) return false;
        if (value.Length > BlockLimit) throw new ToolException($"The '{label}' block would be {value.Length} characters; the limit is {BlockLimit}.");
        var now = time.GetUtcNow().UtcDateTime;
        var updated = await db.MemoryBlocks.Where(b => b.UserId == userId && b.Label == label)
            .ExecuteUpdateAsync(s => s.SetProperty(b => b.Value, value).SetProperty(b => b.UpdatedAt, now), ct);
        if (updated == 0)
        {
            db.MemoryBlocks.Add(new MemoryBlock { UserId = userId, Label = label, Value = value, UpdatedAt = now });
            await db.SaveChangesAsync(ct);
        }
        return true;
    }

    public async Task<MemoryPassage> InsertPassageAsync(Guid userId, string text, CancellationToken ct)
    {
        var vector = (await embedder.GenerateAsync([text], cancellationToken: ct))[0].Vector.ToArray();
        var passage = new MemoryPassage
        {
            Id = Guid.NewGuid(),
            UserId = userId,
            Text = text,
            Embedding = MemoryMarshal.AsBytes(vector.AsSpan()).ToArray(),
            EmbeddingModel = EmbedderId,
            CreatedAt = time.GetUtcNow().UtcDateTime,
        };
        db.MemoryPassages.Add(passage);
        await db.SaveChangesAsync(ct);
        return passage;
    }

    private string EmbedderId => embedder.GetService<EmbeddingGeneratorMetadata>()?.DefaultModelId ?? embedder.GetType().Name;

    /// <summary>The user's passages closest in meaning to the query (cosine similarity; vectors are normalised).</summary>
    public async Task<List<(MemoryPassage Passage, double Score)>> SearchPassagesAsync(Guid userId, string query, int k, CancellationToken ct)
    {
        var q = (await embedder.GenerateAsync([query], cancellationToken: ct))[0].Vector.ToArray();
        var model = EmbedderId;
        var passages = await db.MemoryPassages.AsNoTracking().Where(p => p.UserId == userId && p.EmbeddingModel == model).ToListAsync(ct);
        return passages
            .Select(p => (p, Cosine(q, MemoryMarshal.Cast<byte, float>(p.Embedding))))
            .OrderByDescending(x => x.Item2).Take(k).ToList();
    }

    public async Task<bool> DeletePassageAsync(Guid userId, Guid id, CancellationToken ct) =>
        await db.MemoryPassages.Where(p => p.Id == id && p.UserId == userId).ExecuteDeleteAsync(ct) > 0;

    public Task<List<MemoryPassage>> ListPassagesAsync(Guid userId, int limit, CancellationToken ct) =>
        db.MemoryPassages.AsNoTracking().Where(p => p.UserId == userId).OrderByDescending(p => p.CreatedAt).Take(limit).ToListAsync(ct);

    /// <summary>The user's own past chat messages containing the text (recall memory).</summary>
    public async Task<List<object>> RecallAsync(Guid userId, string text, int k, CancellationToken ct)
    {
        var pattern = "%" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("%", "\\%", StringComparison.Ordinal).Replace("_", "\\_", StringComparison.Ordinal) + "%";
        var rows = await (from m in db.Messages.AsNoTracking()
                          join c in db.Conversations.AsNoTracking() on m.ConversationId equals c.Id
                          where c.UserId == userId && EF.Functions.Like(m.Content, pattern, "\\")
                          orderby m.CreatedAt descending
                          select new { m.ConversationId, conversation = c.Title, m.Role, m.Content, m.CreatedAt }).Take(k).ToListAsync(ct);
        return rows.Cast<object>().ToList();
    }

    private static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) return double.MinValue;
        double dot = 0, na = 0, nb = 0;
        for (var i = 0; i < a.Length; i++)
        {
            dot += a[i] * b[i];
            na += a[i] * a[i];
            nb += b[i] * b[i];
        }
        return na == 0 || nb == 0 ? 0 : dot / Math.Sqrt(na * nb);
    }
}

/// <summary>The memory agent's tools: it edits its own memory (no approval: the memory is the user's and visible in /api/v1/memory).</summary>
public sealed class MemoryToolProvider : IToolProvider
{
    public string Name => "memory";

    public string Description => "Core memory blocks, archival memory (search by meaning) and recall of past messages.";

    public (bool Available, string? Reason) Health() => (true, null);

    public IReadOnlyList<AgentTool> Create(ToolContext context)
    {
        MemoryStore Store() => context.Services.GetRequiredService<MemoryStore>();
        static ToolRisk Low(AIFunctionArguments _) => ToolRisk.Low;
        return
        [
            new(AIFunctionFactory.Create(
                async ([Description("Block: 'persona' or 'human'.")] string label, [Description("Text to add on a new line.")] string content, CancellationToken ct) =>
                {
                    var blocks = await Store().BlocksAsync(context.UserId, ct);
                    var block = blocks.FirstOrDefault(b => b.Label == label) ?? throw new ToolException($"No block '{label}'; use 'persona' or 'human'.");
                    var value = string.IsNullOrEmpty(block.Value) ? content : block.Value + "\n" + content;
                    await Store().SetBlockAsync(context.UserId, label, value, ct);
                    return new { label, value };
                }, "core_memory_append", "Appends a line to a core memory block."), false, Low),
            new(AIFunctionFactory.Create(
                async ([Description("Block: 'persona' or 'human'.")] string label, [Description("Exact text to replace.")] string oldContent, [Description("Replacement text.")] string newContent, CancellationToken ct) =>
                {
                    var blocks = await Store().BlocksAsync(context.UserId, ct);
                    var block = blocks.FirstOrDefault(b => b.Label == label) ?? throw new ToolException($"No block '{label}'; use 'persona' or 'human'.");
                    if (oldContent.Length == 0 || !block.Value.Contains(oldContent, StringComparison.Ordinal))
                        throw new ToolException($"The '{label}' block does not contain that text.");
                    var value = block.Value.Replace(oldContent, newContent, StringComparison.Ordinal);
                    await Store().SetBlockAsync(context.UserId, label, value, ct);
                    return new { label, value };
                }, "core_memory_replace", "Replaces text in a core memory block."), false, Low),
            new(AIFunctionFactory.Create(
                async ([Description("The passage to remember.")] string content, CancellationToken ct) =>
                {
                    var passage = await Store().InsertPassageAsync(context.UserId, content, ct);
                    return new { id = passage.Id, stored = true };
                }, "archival_memory_insert", "Stores a passage in archival memory."), false, Low),
            new(AIFunctionFactory.Create(
                async ([Description("What to look for.")] string query, [Description("How many passages (1-20).")] int? count, CancellationToken ct) =>
                {
                    var hits = await Store().SearchPassagesAsync(context.UserId, query, Math.Clamp(count ?? 5, 1, 20), ct);
                    return hits.Select(h => new { id = h.Passage.Id, text = h.Passage.Text, score = Math.Round(h.Score, 4) }).ToList();
                }, "archival_memory_search", "Finds archival memory passages by meaning."), false, Low),
            new(AIFunctionFactory.Create(
                async ([Description("Text the messages contain.")] string query, [Description("How many messages (1-20).")] int? count, CancellationToken ct) =>
                    await Store().RecallAsync(context.UserId, query, Math.Clamp(count ?? 5, 1, 20), ct),
                "conversation_search", "Finds the user's past chat messages containing the text."), false, Low),
        ];
    }
}

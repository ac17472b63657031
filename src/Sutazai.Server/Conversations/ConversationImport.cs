namespace Sutazai.Server.Conversations;

/// <summary>
/// Checks an exported conversation before anything of it is stored: the fields, a size bound, and that the messages
/// form a tree — every parent is another message of the export and every chain of parents ends at a message without
/// one. A top level of several messages is a tree too: editing the first message adds a sibling without a parent, and
/// exports of such conversations must import again.
/// </summary>
public static class ConversationImport
{
    public const string Format = "sutazai.conversation.v1";

    /// <summary>Field errors keyed like <c>messages[3].parentId</c>; empty when the export may be imported.</summary>
    public static Dictionary<string, string[]> Validate(ConversationExport export, int maxMessages, int maxMessageChars)
    {
        var errors = new Dictionary<string, List<string>>();
        void Add(string field, string message)
        {
            if (!errors.TryGetValue(field, out var list)) errors[field] = list = [];
            list.Add(message);
        }

        if (export.Format != Format) Add("format", $"Only '{Format}' exports can be imported.");
        if (string.IsNullOrWhiteSpace(export.Title) || export.Title.Length > ConversationStore.MaxTitleLength)
            Add("title", $"Title must be 1 to {ConversationStore.MaxTitleLength} characters.");
        var messages = export.Messages ?? [];
        if (messages.Count > maxMessages)
        {
            // Checked first: the walks below are linear, but there is no reason to look at a refused import's messages.
            Add("messages", $"An import holds at most {maxMessages} messages (Sutazai:Conversations:MaxImportMessages); this one has {messages.Count}.");
            return Freeze(errors);
        }

        var indexById = new Dictionary<Guid, int>(messages.Count);
        var unique = true;
        for (var i = 0; i < messages.Count; i++)
        {
            if (messages[i] is null) Add($"messages[{i}]", "A message is required.");
            else if (!indexById.TryAdd(messages[i].Id, i)) unique = false;
        }
        if (!unique) Add("messages", "Message ids must be unique.");

        for (var i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            if (m is null) continue;
            if (m.Role is not ("user" or "assistant" or "system")) Add($"messages[{i}].role", "Role must be user, assistant or system.");
            if (m.Content is null || m.Content.Length > maxMessageChars)
                Add($"messages[{i}].content", $"Content is required (at most {maxMessageChars} characters, Sutazai:Conversations:MaxMessageChars).");
            if (m.ParentId is not { } parent) continue;
            if (parent == m.Id) Add($"messages[{i}].parentId", "A message cannot be its own parent.");
            else if (!indexById.ContainsKey(parent)) Add($"messages[{i}].parentId", "parentId must name another message of the export.");
        }

        // With repeated ids "the parent" is ambiguous, so cycles are only looked for among unique ones.
        if (unique)
        {
            foreach (var cycle in ParentCycles(messages, indexById))
            {
                var chain = string.Join(" → ", cycle.Append(cycle[0]).Select(i => $"messages[{i}]"));
                foreach (var i in cycle) Add($"messages[{i}].parentId", $"The parents form a cycle ({chain}); every chain of parents must end at a message without one.");
            }
        }
        return Freeze(errors);
    }

    /// <summary>
    /// Each cycle of parent links (two or more messages; a self-parent is reported on its own), as message indexes in
    /// the order the links are followed. Every message is visited once: a walk up the parents stops at a root, at an
    /// unknown or self parent (reported elsewhere), or at a message an earlier walk settled.
    /// </summary>
    private static List<List<int>> ParentCycles(IReadOnlyList<ExportedMessage> messages, Dictionary<Guid, int> indexById)
    {
        int ParentIndex(int i) =>
            messages[i] is { ParentId: { } parent } m && parent != m.Id && indexById.TryGetValue(parent, out var p) ? p : -1;

        const byte Unseen = 0, OnWalk = 1, Settled = 2;
        var state = new byte[messages.Count];
        var cycles = new List<List<int>>();
        var walk = new List<int>();
        for (var start = 0; start < messages.Count; start++)
        {
            if (state[start] != Unseen || messages[start] is null) continue;
            walk.Clear();
            var at = start;
            while (at >= 0 && state[at] == Unseen)
            {
                state[at] = OnWalk;
                walk.Add(at);
                at = ParentIndex(at);
            }
            if (at >= 0 && state[at] == OnWalk) cycles.Add(walk[walk.IndexOf(at)..]);
            foreach (var i in walk) state[i] = Settled;
        }
        return cycles;
    }

    private static Dictionary<string, string[]> Freeze(Dictionary<string, List<string>> errors) =>
        errors.ToDictionary(e => e.Key, e => e.Value.ToArray());
}

using Sutazai.Data.Entities;

namespace Sutazai.Server.Conversations;

/// <summary>
/// A conversation's messages indexed once by id and by parent, so the branch, the siblings of every message on it and
/// the newest leaf under a message cost one pass each instead of a scan per message. Every walk keeps a visited set:
/// imports are checked to be trees, but a corrupt row (a parent cycle written by hand or by an old version) must still
/// end the walk, not spin a core.
/// </summary>
public sealed class ConversationTree
{
    private readonly Dictionary<Guid, ChatMessageEntity> _byId;
    private readonly ILookup<Guid?, ChatMessageEntity> _byParent;

    public ConversationTree(IEnumerable<ChatMessageEntity> messages)
    {
        var ordered = messages.OrderBy(m => m.CreatedAt).ThenBy(m => m.Id).ToList();
        _byId = new Dictionary<Guid, ChatMessageEntity>(ordered.Count);
        foreach (var m in ordered) _byId.TryAdd(m.Id, m);
        _byParent = ordered.ToLookup(m => m.ParentId); // oldest first within each parent
    }

    public bool Contains(Guid id) => _byId.ContainsKey(id);

    /// <summary>The path from the root to <paramref name="leafId"/>, oldest first.</summary>
    public List<ChatMessageEntity> Branch(Guid? leafId)
    {
        var path = new List<ChatMessageEntity>();
        var visited = new HashSet<Guid>();
        var current = leafId;
        while (current is { } id && visited.Add(id) && _byId.TryGetValue(id, out var message))
        {
            path.Add(message);
            current = message.ParentId;
        }
        path.Reverse();
        return path;
    }

    /// <summary>Follows the newest child from <paramref name="messageId"/> down to a leaf.</summary>
    public Guid DeepestLeaf(Guid messageId)
    {
        var current = messageId;
        var visited = new HashSet<Guid> { current };
        while (_byParent[current].LastOrDefault() is { } child && visited.Add(child.Id)) current = child.Id;
        return current;
    }

    /// <summary>The ids of the messages sharing <paramref name="message"/>'s parent (itself included), oldest first.</summary>
    public IReadOnlyList<Guid> Siblings(ChatMessageEntity message)
    {
        var siblings = _byParent[message.ParentId].Select(m => m.Id).ToList();
        return siblings.Count == 0 ? [message.Id] : siblings;
    }

    /// <summary>The branch to <paramref name="leafId"/> as responses, each with its siblings for ‹ 2/3 › navigation.</summary>
    public List<MessageResponse> ActiveBranch(Guid? leafId) =>
        Branch(leafId).Select(m => MessageResponse.From(m, Siblings(m))).ToList();
}

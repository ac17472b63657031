using Sutazai.Data.Entities;
using Sutazai.Server.Conversations;

namespace Sutazai.Server.Tests.Conversations;

public sealed class ConversationTreeTests
{
    private static readonly DateTime Start = new(2025, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    private static ChatMessageEntity Message(Guid id, Guid? parent, int minute) =>
        new() { Id = id, ConversationId = Guid.Empty, ParentId = parent, Role = "user", Content = "", Status = MessageStatus.Complete, CreatedAt = Start.AddMinutes(minute) };

    [Fact]
    public void SiblingsBranchAndDeepestLeaf_FollowTheTree_OldestSiblingFirst()
    {
        Guid root = Guid.NewGuid(), older = Guid.NewGuid(), newer = Guid.NewGuid(), leaf = Guid.NewGuid();
        // Given out of order: the tree orders by time, not by the list.
        var tree = new ConversationTree([Message(leaf, older, 3), Message(newer, root, 2), Message(root, null, 0), Message(older, root, 1)]);

        Assert.Equal([older, newer], tree.Siblings(Message(newer, root, 2)));
        Assert.Equal([root, older, leaf], tree.Branch(leaf).Select(m => m.Id));
        Assert.Equal(newer, tree.DeepestLeaf(root));
        Assert.Equal(leaf, tree.DeepestLeaf(older));
        Assert.Equal([root, newer], tree.ActiveBranch(newer).Select(m => m.Id));
        Assert.Equal([1, 2], tree.ActiveBranch(newer).Select(m => m.SiblingCount));
    }

    [Fact]
    public void ParentCycleInStoredRows_EndsEveryWalk()
    {
        Guid a = Guid.NewGuid(), b = Guid.NewGuid(), c = Guid.NewGuid(), self = Guid.NewGuid();
        var tree = new ConversationTree([Message(a, c, 0), Message(b, a, 1), Message(c, b, 2), Message(self, self, 3)]);

        Assert.Equal([b, c, a], tree.Branch(a).Select(m => m.Id)); // a → c → b, then back at a: stop
        Assert.Equal(c, tree.DeepestLeaf(a)); // a → b → c, whose child a was seen
        Assert.Equal([self], tree.Branch(self).Select(m => m.Id));
        Assert.Equal(self, tree.DeepestLeaf(self));
    }
}

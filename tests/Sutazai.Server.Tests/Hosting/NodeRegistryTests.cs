using Microsoft.EntityFrameworkCore;
using Sutazai.Data.Entities;
using Sutazai.Server.Conversations;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Hosting;

/// <summary>
/// The registry's reaper on both databases (SeparateNodesTests runs it between real processes on PostgreSQL): replies
/// of a node that went silent or stopped are settled as interrupted — only those it started before it died, never a
/// live node's, never a reply made after a stopped node came back.
/// </summary>
public sealed class NodeRegistryTests
{
    [Theory]
    [InlineData(DbProvider.Sqlite)]
    [InlineData(DbProvider.Postgres)]
    public async Task RepliesOfGoneAndStoppedNodes_AreInterrupted_OthersAreLeftStreaming(DbProvider provider)
    {
        await using var app = TestApp.Create(provider, new Dictionary<string, string?>
        {
            ["Sutazai:Cluster:HeartbeatSeconds"] = "1",
            ["Sutazai:Cluster:NodeTimeoutSeconds"] = "30",
            ["Sutazai:Inference:Ollama:AutoDetect"] = "false",
        });
        var user = await Accounts.RegisterAsync(app.Client());
        var now = DateTime.UtcNow;
        var conversation = Guid.NewGuid();
        var replies = new Dictionary<string, (Guid Id, string Node, DateTime Created)>
        {
            ["silent"] = (Guid.NewGuid(), "silent-node", now.AddMinutes(-10)),
            ["stopped-before"] = (Guid.NewGuid(), "stopped-node", now.AddMinutes(-5)),
            ["stopped-after"] = (Guid.NewGuid(), "stopped-node", now.AddMinutes(-1)),
            ["live"] = (Guid.NewGuid(), "live-node", now.AddMinutes(-10)),
        };
        await app.WithDbAsync(async db =>
        {
            db.ClusterNodes.AddRange(
                new ClusterNode { Id = "silent-node", Role = "all", Version = "1", Host = "h", StartedAt = now.AddHours(-1), HeartbeatAt = now.AddMinutes(-9) },
                new ClusterNode { Id = "stopped-node", Role = "all", Version = "1", Host = "h", StartedAt = now.AddHours(-1), HeartbeatAt = now.AddMinutes(-2), StoppedAt = now.AddMinutes(-2) },
                new ClusterNode { Id = "live-node", Role = "all", Version = "1", Host = "h", StartedAt = now.AddHours(-1), HeartbeatAt = now.AddHours(1) });
            db.Conversations.Add(new Conversation { Id = conversation, UserId = user.Id, CreatedAt = now, UpdatedAt = now });
            foreach (var (_, (id, node, created)) in replies)
                db.Messages.Add(new ChatMessageEntity { Id = id, ConversationId = conversation, Role = "assistant", Status = MessageStatus.Streaming, GeneratingNode = node, CreatedAt = created, UpdatedAt = created });
            return await db.SaveChangesAsync();
        });

        async Task<Dictionary<string, string>> StatusesAsync() =>
            await app.WithDbAsync(async db =>
            {
                var rows = await db.Messages.AsNoTracking().Where(m => m.ConversationId == conversation).ToDictionaryAsync(m => m.Id, m => m.Status);
                return replies.ToDictionary(r => r.Key, r => rows[r.Value.Id]);
            });
        var deadline = DateTime.UtcNow.AddSeconds(60);
        var statuses = await StatusesAsync();
        while ((statuses["silent"] != MessageStatus.Interrupted || statuses["stopped-before"] != MessageStatus.Interrupted) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
            statuses = await StatusesAsync();
        }
        Assert.Equal(MessageStatus.Interrupted, statuses["silent"]);
        Assert.Equal(MessageStatus.Interrupted, statuses["stopped-before"]);
        Assert.Equal(MessageStatus.Streaming, statuses["stopped-after"]); // made after that node stopped: a new process's
        Assert.Equal(MessageStatus.Streaming, statuses["live"]);
        Assert.Equal(InterruptedReplies.Detail, await app.WithDbAsync(db => db.Messages.Where(m => m.Id == replies["silent"].Id).Select(m => m.Error).SingleAsync()));
    }
}

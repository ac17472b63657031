using Microsoft.EntityFrameworkCore;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Server.Hosting;

namespace Sutazai.Server.Conversations;

/// <summary>
/// At start-up, after the schema is current: the replies this node was generating when its previous process died
/// (kill -9, a crash, power loss) can never finish, so they become <c>interrupted</c>, keeping whatever content was
/// stored, and can be regenerated. Replies of other nodes are left alone: their owners may still be writing them.
/// </summary>
public sealed class InterruptedReplies(IServiceScopeFactory scopes, NodeIdentity node, TimeProvider time, ILogger<InterruptedReplies> logger) : IStartupStep
{
    public const string Detail = "The server stopped before this reply finished. Regenerate it to get a whole answer.";

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AppDbContext>();
        var me = node.Id;
        var now = time.GetUtcNow().UtcDateTime;
        // Rows written before replies named their node (GeneratingNode null) predate multi-node replies: settle them too.
        var settled = await SettleAsync(db.Messages.Where(m => m.Status == MessageStatus.Streaming && (m.GeneratingNode == me || m.GeneratingNode == null)),
            now, cancellationToken);
        if (settled > 0) logger.LogWarning("Marked {Count} reply(ies) left unfinished by this node's previous process as interrupted", settled);
    }

    /// <summary>Marks <paramref name="replies"/> interrupted, keeping their content, with the regenerate hint; returns how many.</summary>
    public static Task<int> SettleAsync(IQueryable<ChatMessageEntity> replies, DateTime now, CancellationToken ct) =>
        replies.ExecuteUpdateAsync(s => s
            .SetProperty(m => m.Status, MessageStatus.Interrupted)
            .SetProperty(m => m.FinishReason, MessageStatus.Interrupted)
            .SetProperty(m => m.Error, Detail)
            .SetProperty(m => m.UpdatedAt, now), ct);
}

using Microsoft.EntityFrameworkCore;
using Sutazai.Data;
using Sutazai.Data.Entities;

namespace Sutazai.Server.Knowledge;

/// <summary>
/// What one user may read: their own documents, and documents in collections shared with them by name or shared with
/// all by an administrator. Only administrators may share with all (<see cref="CollectionService"/>); the owner's role
/// is checked here as well, so a flag set before that rule, or kept by a demoted administrator, widens nobody's reading.
/// </summary>
public sealed record KnowledgeScope(Guid UserId, IReadOnlyList<Guid> SharedCollectionIds, IReadOnlyList<Guid> SharedOwnerIds);

public static class KnowledgeAccess
{
    public static async Task<KnowledgeScope> ScopeAsync(AppDbContext db, Guid userId, CancellationToken ct)
    {
        var shared = await db.Collections.AsNoTracking()
            .Where(c => c.OwnerId != userId
                && ((c.SharedWithAll && db.Users.Any(u => u.Id == c.OwnerId && u.Role == Roles.Admin))
                    || db.CollectionShares.Any(s => s.CollectionId == c.Id && s.UserId == userId)))
            .Select(c => new { c.Id, c.OwnerId }).ToListAsync(ct);
        return new KnowledgeScope(userId, shared.Select(s => s.Id).ToList(), shared.Select(s => s.OwnerId).Distinct().ToList());
    }

    /// <summary>Documents the scope may read, as a query (the filter runs in the database).</summary>
    public static IQueryable<KnowledgeDocument> Visible(AppDbContext db, KnowledgeScope scope) =>
        db.Documents.Where(d => d.OwnerId == scope.UserId || (d.CollectionId != null && scope.SharedCollectionIds.Contains(d.CollectionId.Value)));
}

using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Sutazai.Data;
using Sutazai.Data.Entities;

namespace Sutazai.Server.Knowledge;

public abstract record CollectionOutcome
{
    public sealed record Saved(CollectionResponse Collection) : CollectionOutcome;

    public sealed record Invalid(Dictionary<string, string[]> Errors) : CollectionOutcome;

    public sealed record Forbidden(string Detail) : CollectionOutcome;

    public sealed record Conflict(string Detail) : CollectionOutcome;

    public sealed record NotFound : CollectionOutcome;
}

/// <summary>
/// Document collections: creating, sharing, listing, deleting, and finding them by <c>#name</c>. Every door (REST, the
/// Documents and Chat pages) goes through here, so the sharing rule and the name lookup are the same everywhere.
/// </summary>
public sealed partial class CollectionService(AppDbContext db, TimeProvider time)
{
    public const int MaxNameLength = 100;
    public const int MaxDescriptionLength = 1000;

    /// <summary>
    /// Why sharing with everyone is for administrators: a collection shared with all grounds every user's answers, an
    /// administrator's included, so a user's document could carry instructions into everyone's prompts.
    /// </summary>
    public const string SharedWithAllIsForAdmins =
        "Only an administrator may share a collection with every user (sharedWithAll); share it with named users (sharedWithUserIds) instead.";

    public async Task<CollectionOutcome> CreateAsync(Guid userId, bool isAdmin, CollectionRequest request, CancellationToken ct)
    {
        var errors = Validate(request, creating: true);
        if (errors.Count > 0) return new CollectionOutcome.Invalid(errors);
        if (request.SharedWithAll == true && !isAdmin) return new CollectionOutcome.Forbidden(SharedWithAllIsForAdmins);
        var name = request.Name!.Trim();
        if (await db.Collections.AnyAsync(c => c.OwnerId == userId && c.Name == name, ct)) return new CollectionOutcome.Conflict("You already have a collection with that name.");
        var collection = new KnowledgeCollection
        {
            Id = Guid.NewGuid(), OwnerId = userId, Name = name, Description = request.Description,
            SharedWithAll = request.SharedWithAll ?? false, CreatedAt = time.GetUtcNow().UtcDateTime,
        };
        if (await SharesAsync(collection.Id, userId, request.SharedWithUserIds, ct) is not { } shares) return UnknownUsers();
        db.Collections.Add(collection);
        db.CollectionShares.AddRange(shares);
        await db.SaveChangesAsync(ct);
        return new CollectionOutcome.Saved(await ToResponseAsync(collection, userId, ct));
    }

    /// <summary>
    /// Rename, describe, or change sharing (owner only). Turning <c>sharedWithAll</c> on is for administrators; anyone
    /// may turn it off, since that only narrows who reads the collection.
    /// </summary>
    public async Task<CollectionOutcome> UpdateAsync(Guid userId, bool isAdmin, Guid id, CollectionRequest request, CancellationToken ct)
    {
        var errors = Validate(request, creating: false);
        if (errors.Count > 0) return new CollectionOutcome.Invalid(errors);
        var collection = await db.Collections.FirstOrDefaultAsync(c => c.Id == id && c.OwnerId == userId, ct);
        if (collection is null) return new CollectionOutcome.NotFound();
        if (request.SharedWithAll == true && !collection.SharedWithAll && !isAdmin) return new CollectionOutcome.Forbidden(SharedWithAllIsForAdmins);
        if (request.SharedWithUserIds is not null)
        {
            if (await SharesAsync(collection.Id, userId, request.SharedWithUserIds, ct) is not { } shares) return UnknownUsers();
            var current = await db.CollectionShares.Where(s => s.CollectionId == collection.Id).ToListAsync(ct);
            db.CollectionShares.RemoveRange(current.Where(s => shares.All(w => w.UserId != s.UserId)));
            db.CollectionShares.AddRange(shares.Where(w => current.All(s => s.UserId != w.UserId)));
        }
        if (!string.IsNullOrWhiteSpace(request.Name)) collection.Name = request.Name.Trim();
        if (request.Description is not null) collection.Description = request.Description.Length == 0 ? null : request.Description;
        if (request.SharedWithAll is { } all) collection.SharedWithAll = all;
        await db.SaveChangesAsync(ct);
        return new CollectionOutcome.Saved(await ToResponseAsync(collection, userId, ct));
    }

    /// <summary>Mine and those shared with me, by name.</summary>
    public async Task<List<CollectionResponse>> ListAsync(Guid userId, CancellationToken ct)
    {
        var result = new List<CollectionResponse>();
        foreach (var c in await ReadableAsync(userId, ct)) result.Add(await ToResponseAsync(c, userId, ct));
        return result;
    }

    /// <summary>The collections <paramref name="userId"/> may read (own or shared with them), by name.</summary>
    public async Task<List<KnowledgeCollection>> ReadableAsync(Guid userId, CancellationToken ct)
    {
        var scope = await KnowledgeAccess.ScopeAsync(db, userId, ct);
        return await db.Collections.AsNoTracking().Where(c => c.OwnerId == userId || scope.SharedCollectionIds.Contains(c.Id))
            .OrderBy(c => c.Name).ThenBy(c => c.Id).ToListAsync(ct);
    }

    /// <summary>Deletes one of my collections; its documents and chunks stay, without a collection. False when it is not mine.</summary>
    public async Task<bool> DeleteAsync(Guid userId, Guid id, CancellationToken ct)
    {
        if (!await db.Collections.AnyAsync(c => c.Id == id && c.OwnerId == userId, ct)) return false;
        await db.Documents.Where(d => d.CollectionId == id).ExecuteUpdateAsync(s => s.SetProperty(d => d.CollectionId, (Guid?)null), ct);
        await db.Chunks.Where(c => c.CollectionId == id).ExecuteUpdateAsync(s => s.SetProperty(c => c.CollectionId, (Guid?)null), ct);
        await db.Collections.Where(c => c.Id == id).ExecuteDeleteAsync(ct);
        return true;
    }

    [GeneratedRegex(@"(?<![\w#])#([\w.\-]{1,100})")]
    private static partial Regex Tag();

    /// <summary>The distinct <c>#name</c> words of a message (as in Open WebUI).</summary>
    public static IReadOnlyList<string> TagsIn(string text) =>
        Tag().Matches(text).Select(m => m.Groups[1].Value).Distinct(StringComparer.OrdinalIgnoreCase).ToList();

    /// <summary>
    /// The collections the <c>#name</c> words of <paramref name="text"/> attach: for each name (case-insensitive) my
    /// own collections of that name, or — only when I have none — those of that name shared with me. Another user
    /// cannot swap their collection in for mine by naming it like mine. A name that matches nothing is just text.
    /// </summary>
    public async Task<List<Guid>> NamedInAsync(Guid userId, string text, CancellationToken ct)
    {
        var names = TagsIn(text).Select(n => n.ToLowerInvariant()).Distinct().ToList();
        if (names.Count == 0) return [];
        var scope = await KnowledgeAccess.ScopeAsync(db, userId, ct);
        var candidates = await db.Collections.AsNoTracking()
            .Where(c => (c.OwnerId == userId || scope.SharedCollectionIds.Contains(c.Id)) && names.Contains(c.Name.ToLower()))
            .OrderBy(c => c.Name).ThenBy(c => c.Id)
            .Select(c => new { c.Id, c.OwnerId, c.Name }).ToListAsync(ct);
        return candidates.GroupBy(c => c.Name.ToLowerInvariant())
            .SelectMany(named => named.Any(c => c.OwnerId == userId) ? named.Where(c => c.OwnerId == userId) : named)
            .Select(c => c.Id).ToList();
    }

    private static Dictionary<string, string[]> Validate(CollectionRequest request, bool creating)
    {
        var errors = new Dictionary<string, string[]>();
        if (creating && string.IsNullOrWhiteSpace(request.Name)) errors["name"] = ["Name is required."];
        if (request.Name is { Length: > MaxNameLength }) errors["name"] = [$"Name must be at most {MaxNameLength} characters."];
        if (request.Description is { Length: > MaxDescriptionLength }) errors["description"] = [$"Description must be at most {MaxDescriptionLength} characters."];
        return errors;
    }

    private static CollectionOutcome.Invalid UnknownUsers() =>
        new(new Dictionary<string, string[]> { ["sharedWithUserIds"] = ["Every id must name an existing user."] });

    /// <summary>The share rows for <paramref name="userIds"/> (the owner left out), or null when one names no user.</summary>
    private async Task<List<CollectionShare>?> SharesAsync(Guid collectionId, Guid ownerId, List<Guid>? userIds, CancellationToken ct)
    {
        if (userIds is null) return [];
        var wanted = userIds.Where(u => u != ownerId).Distinct().ToList();
        var known = await db.Users.CountAsync(u => wanted.Contains(u.Id), ct);
        return known != wanted.Count ? null : wanted.Select(u => new CollectionShare { CollectionId = collectionId, UserId = u }).ToList();
    }

    private async Task<CollectionResponse> ToResponseAsync(KnowledgeCollection c, Guid userId, CancellationToken ct) =>
        new(c.Id, c.OwnerId, c.Name, c.Description, c.SharedWithAll,
            c.OwnerId == userId ? await db.CollectionShares.Where(s => s.CollectionId == c.Id).Select(s => s.UserId).ToListAsync(ct) : [],
            await db.Documents.CountAsync(d => d.CollectionId == c.Id, ct), c.CreatedAt, c.OwnerId == userId);
}

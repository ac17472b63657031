using Microsoft.EntityFrameworkCore;
using Sutazai.Data;
using Sutazai.Data.Entities;

namespace Sutazai.Server.Hosting;

/// <summary>What the admin system monitor shows from the database (all nodes' replies and the ingestion backlog).</summary>
public sealed record ActivitySnapshot(int Replies, double? MeanTokensPerSecond, double? MeanTimeToFirstTokenMs, long CompletionTokens, int DocumentsWaiting);

public sealed class ActivityStatistics(AppDbContext db)
{
    /// <summary>Assistant replies with usage since <paramref name="since"/>, and documents not yet indexed or failed.</summary>
    public async Task<ActivitySnapshot> ReadAsync(DateTime since, CancellationToken ct)
    {
        var recent = await db.Messages.AsNoTracking().Where(m => m.Role == "assistant" && m.CreatedAt >= since && m.CompletionTokens != null)
            .Select(m => new { m.TokensPerSecond, m.TimeToFirstTokenMs, m.CompletionTokens }).ToListAsync(ct);
        double? Mean(IEnumerable<double> values) => values.ToList() is { Count: > 0 } list ? list.Average() : null;
        var waiting = await db.Documents.CountAsync(d => d.Status != DocumentStatus.Indexed && d.Status != DocumentStatus.Failed, ct);
        return new ActivitySnapshot(recent.Count,
            Mean(recent.Where(r => r.TokensPerSecond is not null).Select(r => (double)r.TokensPerSecond!.Value)),
            Mean(recent.Where(r => r.TimeToFirstTokenMs is not null).Select(r => (double)r.TimeToFirstTokenMs!.Value)),
            recent.Sum(r => (long)(r.CompletionTokens ?? 0)), waiting);
    }
}

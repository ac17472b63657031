using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Sutazai.TestSupport.Fuzz;

/// <summary>What a fuzz run does: seeded, bounded by a case count and a wall-clock budget.</summary>
public sealed record FuzzOptions
{
    public int Seed { get; init; } = 1;

    /// <summary>HTTP cases to send (spread round-robin over every operation of the OpenAPI document).</summary>
    public int Cases { get; init; } = 2_000;

    /// <summary>WebSocket sessions per socket path; each sends <see cref="FramesPerSession"/> hostile frames.</summary>
    public int SocketSessions { get; init; } = 30;

    public int FramesPerSession { get; init; } = 20;

    /// <summary>Requests in flight at once.</summary>
    public int Concurrency { get; init; } = 4;

    /// <summary>A request (headers and body) or a socket answer slower than this is a hang.</summary>
    public TimeSpan Slow { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The server's request-line limit (Kestrel's MaxRequestLineSize) and body limit
    /// (Sutazai:Http:MaxRequestBodyBytes): past them a closed connection is an allowed answer (status 0), not a finding.</summary>
    public int MaxRequestLineBytes { get; init; } = 8 * 1024;

    public int MaxBodyBytes { get; init; } = 10 * 1024 * 1024;

    /// <summary>The run stops sending new cases after this long and reports what it covered.</summary>
    public TimeSpan Budget { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Values never used as a path parameter of a write (PUT/PATCH/DELETE/POST): the account running the
    /// run, the model every generation needs. They may still appear in bodies and reads.</summary>
    public IReadOnlySet<string> Protected { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>Values a property of this name may take (e.g. <c>model</c> → the installed model), mixed with the
    /// values the run learns from responses.</summary>
    public IReadOnlyDictionary<string, string[]> Known { get; init; } = new Dictionary<string, string[]>();

    /// <summary>The sockets to fuzz and the frames each understands, as JSON Schemas keyed by frame type.</summary>
    public IReadOnlyList<SocketSpec> Sockets { get; init; } = SocketSpec.SutazaiSockets;
}

public sealed record SocketSpec(string Path, IReadOnlyDictionary<string, string> Frames)
{
    /// <summary>The frames of docs/api.md's /ws/chat and /ws/jarvis tables.</summary>
    public static readonly IReadOnlyList<SocketSpec> SutazaiSockets =
    [
        new("/ws/chat", new Dictionary<string, string>
        {
            ["chat"] = """{"type":"object","properties":{"conversationId":{"type":"string","format":"uuid"},"message":{"type":"string"},"model":{"type":"string"},"options":{"type":"object","properties":{"temperature":{"type":"number"},"maxTokens":{"type":"integer"},"seed":{"type":"integer"}}},"stream":{"type":"boolean"},"collectionIds":{"type":"array","items":{"type":"string","format":"uuid"}},"useKnowledge":{"type":"boolean"}}}""",
            ["stop"] = """{"type":"object","properties":{"conversationId":{"type":"string","format":"uuid"}}}""",
            ["get_history"] = """{"type":"object","properties":{"conversationId":{"type":"string","format":"uuid"}}}""",
            ["ping"] = """{"type":"object"}""",
            ["auth"] = """{"type":"object","properties":{"token":{"type":"string"}}}""",
        }),
        new("/ws/jarvis", new Dictionary<string, string>
        {
            ["message"] = """{"type":"object","properties":{"text":{"type":"string"},"conversationId":{"type":"string","format":"uuid"},"model":{"type":"string"}}}""",
            ["approve"] = """{"type":"object","properties":{"runId":{"type":"string","format":"uuid"},"approvalId":{"type":"string","format":"uuid"},"approve":{"type":"boolean"},"editedArguments":{"type":"object"}}}""",
            ["cancel"] = """{"type":"object","properties":{"runId":{"type":"string","format":"uuid"}}}""",
            ["history"] = """{"type":"object","properties":{"runId":{"type":"string","format":"uuid"}}}""",
            ["ping"] = """{"type":"object"}""",
            ["auth"] = """{"type":"object","properties":{"token":{"type":"string"}}}""",
        }),
    ];
}

/// <summary>Something a client mistake should never cause: a 5xx, an answer slower than the limit, a dropped connection
/// or a socket closed without a close code (or with 1011).</summary>
public sealed record FuzzFinding(string Kind, string Target, int? Status, double Milliseconds, string Request, string Response)
{
    public override string ToString() =>
        $"{Kind} {Target} → {(Status?.ToString(CultureInfo.InvariantCulture) ?? "-")} in {Milliseconds:F0} ms\n    request: {Request}\n    response: {Response}";
}

public sealed class FuzzReport
{
    private readonly Lock _lock = new();
    private readonly List<double> _latencies = [];

    public int Seed { get; init; }

    public int Cases { get; private set; }

    public int Unsendable { get; private set; }

    public int TokenRenewals { get; internal set; }

    public int SocketSessions { get; private set; }

    public int SocketFrames { get; private set; }

    public TimeSpan Elapsed { get; internal set; }

    public SortedDictionary<int, int> Statuses { get; } = [];

    public SortedDictionary<string, int> SocketCloses { get; } = new(StringComparer.Ordinal);

    /// <summary>Every operation of the document ("METHOD /path/{template}") and how many cases it got.</summary>
    public SortedDictionary<string, int> Operations { get; } = new(StringComparer.Ordinal);

    public List<FuzzFinding> Findings { get; } = [];

    public IEnumerable<string> Uncovered => Operations.Where(o => o.Value == 0).Select(o => o.Key);

    internal void Http(string operation, int status, double ms)
    {
        lock (_lock)
        {
            Cases++;
            Operations[operation] = CollectionExtensions.GetValueOrDefault(Operations, operation) + 1;
            Statuses[status] = CollectionExtensions.GetValueOrDefault(Statuses, status) + 1;
            _latencies.Add(ms);
        }
    }

    internal void Skipped(string operation)
    {
        lock (_lock)
        {
            Unsendable++;
            Operations.TryAdd(operation, 0);
        }
    }

    internal void Socket(int frames, string close)
    {
        lock (_lock)
        {
            SocketSessions++;
            SocketFrames += frames;
            SocketCloses[close] = CollectionExtensions.GetValueOrDefault(SocketCloses, close) + 1;
        }
    }

    internal void Add(FuzzFinding finding)
    {
        lock (_lock) Findings.Add(finding);
    }

    public double Percentile(double p)
    {
        lock (_lock)
        {
            if (_latencies.Count == 0) return 0;
            var sorted = _latencies.Order().ToList();
            return sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p / 100 * sorted.Count) - 1)];
        }
    }

    public string Summary()
    {
        var text = new StringBuilder();
        var server = Statuses.Where(s => s.Key >= 500).Sum(s => s.Value);
        text.AppendLine(CultureInfo.InvariantCulture, $"seed {Seed}: {Cases} HTTP cases over {Operations.Count - Uncovered.Count()}/{Operations.Count} operations in {Elapsed.TotalSeconds:F1} s ({(Elapsed.TotalSeconds > 0 ? Cases / Elapsed.TotalSeconds : 0):F0}/s), {Unsendable} unsendable, {TokenRenewals} sign-ins renewed");
        text.AppendLine(CultureInfo.InvariantCulture, $"latency p50 {Percentile(50):F1} ms, p99 {Percentile(99):F1} ms, max {Percentile(100):F1} ms; 5xx: {server}; findings: {Findings.Count}");
        text.AppendLine("statuses (0: connection closed on an oversized or refused request): " + string.Join(", ", Statuses.Select(s => $"{s.Key}×{s.Value}")));
        text.AppendLine(CultureInfo.InvariantCulture, $"sockets: {SocketSessions} sessions, {SocketFrames} frames; ends: {string.Join(", ", SocketCloses.Select(s => $"{s.Key}×{s.Value}"))}");
        foreach (var finding in Findings.Take(40)) text.AppendLine(finding.ToString());
        if (Findings.Count > 40) text.AppendLine(CultureInfo.InvariantCulture, $"… and {Findings.Count - 40} more");
        return text.ToString();
    }
}

/// <summary>One operation of an OpenAPI document: its parameters and its JSON body schema, if any.</summary>
public sealed record FuzzOperation(string Method, string Path, IReadOnlyList<(string Name, string In, JsonElement Schema)> Parameters, JsonElement? Body, bool FormBody)
{
    public string Key => $"{Method} {Path}";

    public static List<FuzzOperation> Read(JsonElement document)
    {
        var operations = new List<FuzzOperation>();
        foreach (var path in document.GetProperty("paths").EnumerateObject())
        {
            foreach (var op in path.Value.EnumerateObject())
            {
                if (op.Name is "parameters" or "summary" or "description") continue;
                var parameters = new List<(string, string, JsonElement)>();
                if (op.Value.TryGetProperty("parameters", out var ps))
                    foreach (var p in ps.EnumerateArray())
                        parameters.Add((p.GetProperty("name").GetString()!, p.GetProperty("in").GetString()!,
                            p.TryGetProperty("schema", out var s) ? s : default));
                JsonElement? body = null;
                var form = false;
                if (op.Value.TryGetProperty("requestBody", out var rb) && rb.TryGetProperty("content", out var content))
                {
                    foreach (var media in content.EnumerateObject())
                    {
                        if (media.Name.Contains("json", StringComparison.OrdinalIgnoreCase) && media.Value.TryGetProperty("schema", out var schema)) body = schema;
                        if (media.Name.Contains("form", StringComparison.OrdinalIgnoreCase)) form = true;
                    }
                }
                operations.Add(new FuzzOperation(op.Name.ToUpperInvariant(), path.Name, parameters, body, form));
            }
        }
        return operations;
    }
}

using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.AI;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Agents.Tools;

namespace Sutazai.Server.Mcp;

/// <summary>One registered server as this process last saw it: its live client and tool listing, or why it has none.</summary>
public sealed record McpServerState(McpServerRegistration Server, McpClient? Client, IReadOnlyList<McpClientTool> Tools, string? Error, DateTime CheckedAt)
{
    public bool Reachable => Client is not null && Error is null;

    /// <summary>Whether runs of this user may use the server's tools (and so its stored headers): admins always.</summary>
    public bool Allows(Guid userId, bool isAdmin) => isAdmin || Server.AllUsers || Server.AllowedUsers.Any(u => u.UserId == userId);
}

/// <summary>
/// The registered external MCP servers with one long-lived client each and their cached tool listings. Listings are
/// refreshed every <see cref="CacheLifetime"/> by <see cref="McpServerRefresher"/> (and at once when an admin registers a
/// server), each with a <see cref="ListTimeout"/>, so <see cref="McpToolProvider.Create"/> (synchronous) only reads the
/// cache and never blocks a run on the network. A process that did not take the admin request (a worker) sees a new
/// server within one refresh interval.
/// </summary>
public sealed class McpServerCatalog(IServiceScopeFactory scopes, ILoggerFactory loggers, TimeProvider time, ILogger<McpServerCatalog> log) : IAsyncDisposable
{
    public static readonly TimeSpan CacheLifetime = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan ListTimeout = TimeSpan.FromSeconds(5);

    private readonly ConcurrentDictionary<string, McpServerState> _states = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _refreshing = new(1, 1);

    /// <summary>False until the first refresh has read the registrations.</summary>
    public bool Loaded { get; private set; }

    public IReadOnlyList<McpServerState> States => _states.Values.OrderBy(s => s.Server.Name, StringComparer.Ordinal).ToList();

    public McpServerState? Find(string name) => _states.TryGetValue(name, out var state) ? state : null;

    /// <summary>Re-reads the registrations and refreshes every listing older than <see cref="CacheLifetime"/>.</summary>
    public async Task RefreshAllAsync(CancellationToken ct)
    {
        await _refreshing.WaitAsync(ct);
        try
        {
            // Read under the lock, so a registration changed meanwhile (UpdateAsync) is never overwritten by an older read.
            List<McpServerRegistration> servers;
            await using (var scope = scopes.CreateAsyncScope())
                servers = await scope.ServiceProvider.GetRequiredService<AppDbContext>().McpServers.AsNoTracking().Include(s => s.AllowedUsers).ToListAsync(ct);
            foreach (var gone in _states.Keys.Except(servers.Select(s => s.Name)).ToList())
                if (_states.TryRemove(gone, out var old)) await DisposeClientAsync(old);
            var now = time.GetUtcNow().UtcDateTime;
            foreach (var server in servers)
            {
                var known = _states.GetValueOrDefault(server.Name);
                if (known is not null && known.Server.Id == server.Id && known.Reachable && now - known.CheckedAt < CacheLifetime)
                {
                    // The listing is fresh, but who may use the server can have changed on another node.
                    _states[server.Name] = known with { Server = server };
                    continue;
                }
                _states[server.Name] = await ConnectAndListAsync(server, known, ct);
            }
            Loaded = true;
        }
        finally
        {
            _refreshing.Release();
        }
    }

    /// <summary>Connects to (or re-lists) one server now; used when an admin registers it.</summary>
    public async Task<McpServerState> RefreshAsync(McpServerRegistration server, CancellationToken ct)
    {
        await _refreshing.WaitAsync(ct);
        try
        {
            var state = await ConnectAndListAsync(server, _states.GetValueOrDefault(server.Name), ct);
            _states[server.Name] = state;
            return state;
        }
        finally
        {
            _refreshing.Release();
        }
    }

    /// <summary>Takes a changed registration (its allowed users) without re-listing the server.</summary>
    public async Task UpdateAsync(McpServerRegistration server, CancellationToken ct)
    {
        await _refreshing.WaitAsync(ct);
        try
        {
            if (_states.TryGetValue(server.Name, out var state) && state.Server.Id == server.Id) _states[server.Name] = state with { Server = server };
        }
        finally
        {
            _refreshing.Release();
        }
    }

    public async Task ForgetAsync(string name)
    {
        if (_states.TryRemove(name, out var old)) await DisposeClientAsync(old);
    }

    private async Task<McpServerState> ConnectAndListAsync(McpServerRegistration server, McpServerState? known, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(ListTimeout);
        var client = known is not null && known.Server.Id == server.Id && known.Server.Url == server.Url && known.Server.Headers == server.Headers ? known.Client : null;
        if (client is null && known is not null) await DisposeClientAsync(known);
        try
        {
            if (client is not null)
            {
                try
                {
                    return new McpServerState(server, client, (await client.ListToolsAsync(cancellationToken: timeout.Token)).ToList(), null, time.GetUtcNow().UtcDateTime);
                }
                catch (Exception ex) when (IsServerFailure(ex) && !ct.IsCancellationRequested)
                {
                    // The session may have expired on the server: start a new one below.
                    log.LogInformation(ex, "MCP server {Server}: listing on the existing session failed; reconnecting.", server.Name);
                    await client.DisposeAsync();
                    client = null;
                }
            }
            var transport = new HttpClientTransport(new HttpClientTransportOptions
            {
                Endpoint = new Uri(server.Url),
                Name = server.Name,
                TransportMode = HttpTransportMode.AutoDetect,
                ConnectionTimeout = ListTimeout,
                AdditionalHeaders = McpServerHeaders.Parse(server.Headers),
            }, loggers);
            client = await McpClient.CreateAsync(transport, new McpClientOptions(), loggers, timeout.Token);
            var tools = await client.ListToolsAsync(cancellationToken: timeout.Token);
            return new McpServerState(server, client, tools.ToList(), null, time.GetUtcNow().UtcDateTime);
        }
        catch (Exception ex) when (IsServerFailure(ex) && !ct.IsCancellationRequested)
        {
            if (client is not null) await client.DisposeAsync();
            var reason = ex is OperationCanceledException ? $"No answer within {ListTimeout.TotalSeconds:0} s." : ex.Message;
            log.LogWarning("MCP server {Server} at {Url} is not reachable: {Reason}", server.Name, server.Url, reason);
            return new McpServerState(server, null, [], reason, time.GetUtcNow().UtcDateTime);
        }
    }

    internal static bool IsServerFailure(Exception ex) =>
        ex is HttpRequestException or McpException or OperationCanceledException or TimeoutException or IOException or JsonException or InvalidOperationException;

    private static async Task DisposeClientAsync(McpServerState state)
    {
        if (state.Client is not null) await state.Client.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var state in _states.Values) await DisposeClientAsync(state);
        _states.Clear();
        _refreshing.Dispose();
    }
}

/// <summary>Keeps <see cref="McpServerCatalog"/> fresh: at start, then every <see cref="McpServerCatalog.CacheLifetime"/>.</summary>
public sealed class McpServerRefresher(McpServerCatalog catalog, Sutazai.Server.Hosting.Warmup warmup, TimeProvider time, ILogger<McpServerRefresher> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!await warmup.WaitAsync(stoppingToken)) return;
        using var timer = new PeriodicTimer(McpServerCatalog.CacheLifetime, time);
        do
        {
            try
            {
                await catalog.RefreshAllAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The database may be briefly unavailable; the next tick tries again and the old listings stay in use.
                log.LogWarning(ex, "Refreshing the MCP server listings failed.");
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}

/// <summary>The header JSON stored with a registration.</summary>
public static class McpServerHeaders
{
    public static Dictionary<string, string>? Parse(string? json) =>
        json is null ? null : JsonSerializer.Deserialize<Dictionary<string, string>>(json);
}

/// <summary>
/// The "mcp" tool family: every tool of every reachable registered server the run's user may use (admins: every
/// server; others: servers registered for everyone or naming them), named <c>mcp_&lt;server&gt;_&lt;tool&gt;</c>
/// (sanitised to [a-z0-9_]). Every one asks for approval unless an admin pre-approved it: a server's own
/// <c>readOnlyHint</c> is a claim of the external server, so it lowers the shown risk at most to medium and never
/// removes the approval.
/// </summary>
public sealed class McpToolProvider(McpServerCatalog catalog) : IToolProvider
{
    public const string Family = "mcp";

    public string Name => Family;

    public string Description => "Tools of the external MCP servers an admin registered for you (each call needs approval unless an admin pre-approved the tool).";

    public (bool Available, string? Reason) Health()
    {
        var states = catalog.States;
        if (states.Count == 0)
            return (false, catalog.Loaded ? "No MCP server is registered (POST /api/v1/admin/mcp-servers)." : "The MCP server listings have not been loaded yet.");
        if (states.Any(s => s.Reachable)) return (true, null);
        return (false, "No registered MCP server is reachable: " + string.Join("; ", states.Select(s => $"{s.Server.Name}: {s.Error}")));
    }

    public IReadOnlyList<AgentTool> Create(ToolContext context) =>
        catalog.States.Where(s => s.Reachable && s.Allows(context.UserId, context.IsAdmin))
            .SelectMany(s => s.Tools.Select(tool => (Name: ToolName(s.Server.Name, tool.Name), Tool: tool)))
            .DistinctBy(t => t.Name)
            .Select(t =>
            {
                var risk = Risk(t.Tool);
                return new AgentTool(new McpAgentFunction(t.Tool.WithName(t.Name)), SideEffects: true, _ => risk);
            })
            .ToList();

    /// <summary>High, or medium when the server says the tool only reads or is not destructive (its word, never low).</summary>
    public static ToolRisk Risk(McpClientTool tool) =>
        tool.ProtocolTool.Annotations is { } hints && (hints.ReadOnlyHint == true || hints.DestructiveHint == false) ? ToolRisk.Medium : ToolRisk.High;

    /// <summary><c>mcp_&lt;server&gt;_&lt;tool&gt;</c>, lower-case, every other character than [a-z0-9_] replaced by '_'.</summary>
    public static string ToolName(string server, string tool)
    {
        var name = new StringBuilder($"mcp_{server}_{tool}".ToLowerInvariant());
        for (var i = 0; i < name.Length; i++)
            if (name[i] is not (>= 'a' and <= 'z' or >= '0' and <= '9' or '_')) name[i] = '_';
        return name.ToString();
    }

    /// <summary>Turns a failed call (server gone, protocol error) into a <see cref="ToolException"/> the model sees.</summary>
    private sealed class McpAgentFunction(AIFunction inner) : DelegatingAIFunction(inner)
    {
        protected override async ValueTask<object?> InvokeCoreAsync(AIFunctionArguments arguments, CancellationToken cancellationToken)
        {
            try
            {
                return await base.InvokeCoreAsync(arguments, cancellationToken);
            }
            catch (Exception ex) when (McpServerCatalog.IsServerFailure(ex) && !cancellationToken.IsCancellationRequested)
            {
                throw new ToolException($"The MCP server failed: {ex.Message}");
            }
        }
    }
}

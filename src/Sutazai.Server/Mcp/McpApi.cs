using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Server.Identity;

namespace Sutazai.Server.Mcp;

public sealed record McpServerRequest(string? Name, string? Url, Dictionary<string, string>? Headers, List<string>? AllowedUsers);

public sealed record McpAllowedUsersRequest(List<string>? AllowedUsers);

/// <summary>
/// A tool as agents see it. ReadOnlyHint is only what the server claims; every MCP tool has side effects as far as
/// SutazAI knows, and runs without asking only when an admin pre-approved it.
/// </summary>
public sealed record McpToolView(string Name, string OriginalName, string? Description, bool ReadOnlyHint, bool SideEffects, string Risk, bool PreApproved);

/// <summary>
/// A registration with what this process last saw; header values are secrets and never returned. AllowedUsers: the
/// user names whose runs may use the server (besides admins), or ["*"] for everyone; empty means admins only.
/// </summary>
public sealed record McpServerView(
    Guid Id, string Name, string Url, IReadOnlyList<string> Headers, IReadOnlyList<string> AllowedUsers, DateTime CreatedAt, bool Reachable, string? Error,
    DateTime? CheckedAt, IReadOnlyList<McpToolView> Tools);

public static partial class McpApi
{
    public const int MaxHeaders = 20;
    public const int MaxAllowedUsers = 1000;
    public const string Everyone = "*";

    /// <summary>SutazAI's own MCP server at <c>/mcp</c> and the admin routes for external MCP servers.</summary>
    public static IEndpointRouteBuilder MapMcpApi(this IEndpointRouteBuilder routes)
    {
        routes.MapMcp("/mcp").RequireAuthorization(ScopePolicies.Mcp).WithTags("MCP");

        var admin = routes.MapGroup("/api/v1/admin/mcp-servers").WithTags("Admin").RequireAuthorization(IdentitySetup.AdminPolicy);
        admin.MapGet("", List).WithSummary("The registered external MCP servers, each with reachability and its tools as agents see them.");
        admin.MapPost("", Register).WithSummary("Register an external MCP server (Streamable HTTP or SSE); its tools join the 'mcp' tool family.");
        admin.MapPut("/{name}/allowed-users", SetAllowedUsers).WithSummary("Replace who (besides admins) may use the server's tools and headers: user names, [\"*\"] for everyone, [] for admins only.");
        admin.MapDelete("/{name}", Delete).WithSummary("Remove an external MCP server.");
        return routes;
    }

    private static async Task<Ok<List<McpServerView>>> List(AppDbContext db, McpServerCatalog catalog, CancellationToken ct)
    {
        var servers = await db.McpServers.AsNoTracking().Include(s => s.AllowedUsers).OrderBy(s => s.Name).ToListAsync(ct);
        var names = await UserNamesAsync(db, servers.SelectMany(s => s.AllowedUsers.Select(u => u.UserId)), ct);
        var preApproved = await PreApprovedAsync(db, ct);
        return TypedResults.Ok(servers.Select(s => View(s, catalog.Find(s.Name) is { } state && state.Server.Id == s.Id ? state : null, names, preApproved)).ToList());
    }

    private static async Task<Results<Created<McpServerView>, ProblemHttpResult>> Register(
        McpServerRequest request, HttpContext http, AppDbContext db, McpServerCatalog catalog, TimeProvider time, CancellationToken ct)
    {
        var errors = Validate(request);
        var allowed = await ResolveAllowedUsersAsync(db, request.AllowedUsers ?? [], errors, ct);
        if (errors.Count > 0) return Problems.Validation(errors);
        var name = request.Name!;
        if (await db.McpServers.AnyAsync(s => s.Name == name, ct)) return Problems.Conflict($"An MCP server named '{name}' is already registered.");
        var server = new McpServerRegistration
        {
            Id = Guid.NewGuid(),
            Name = name,
            Url = request.Url!.Trim(),
            Headers = request.Headers is { Count: > 0 } headers ? JsonSerializer.Serialize(headers) : null,
            AllUsers = allowed.Everyone,
            CreatedBy = http.User.UserId(),
            CreatedAt = time.GetUtcNow().UtcDateTime,
        };
        server.AllowedUsers = allowed.UserIds.Select(id => new McpServerUser { ServerId = server.Id, UserId = id }).ToList();
        db.McpServers.Add(server);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException)
        {
            // Two registrations raced for the name: the unique index let one in.
            if (await db.McpServers.AsNoTracking().AnyAsync(s => s.Name == name, ct)) return Problems.Conflict($"An MCP server named '{name}' is already registered.");
            throw;
        }
        // Connect now so agents can use its tools at once and the admin sees whether it answers (it is stored either way).
        var state = await catalog.RefreshAsync(server, ct);
        return TypedResults.Created($"/api/v1/admin/mcp-servers/{server.Name}",
            View(server, state, await UserNamesAsync(db, allowed.UserIds, ct), await PreApprovedAsync(db, ct)));
    }

    private static async Task<Results<Ok<McpServerView>, ProblemHttpResult>> SetAllowedUsers(
        string name, McpAllowedUsersRequest request, AppDbContext db, McpServerCatalog catalog, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (request.AllowedUsers is null) errors["allowedUsers"] = ["allowedUsers is required: user names, [\"*\"] for everyone, or [] for admins only."];
        var allowed = await ResolveAllowedUsersAsync(db, request.AllowedUsers ?? [], errors, ct);
        if (errors.Count > 0) return Problems.Validation(errors);
        var server = await db.McpServers.Include(s => s.AllowedUsers).FirstOrDefaultAsync(s => s.Name == name, ct);
        if (server is null) return Problems.NotFound($"No MCP server named '{name}'.");
        server.AllUsers = allowed.Everyone;
        server.AllowedUsers.RemoveAll(u => !allowed.UserIds.Contains(u.UserId));
        server.AllowedUsers.AddRange(allowed.UserIds.Where(id => server.AllowedUsers.All(u => u.UserId != id)).Select(id => new McpServerUser { ServerId = server.Id, UserId = id }));
        await db.SaveChangesAsync(ct);
        // This process at once; the others at their next refresh (McpServerCatalog.CacheLifetime).
        await catalog.UpdateAsync(server, ct);
        return TypedResults.Ok(View(server, catalog.Find(server.Name) is { } state && state.Server.Id == server.Id ? state : null,
            await UserNamesAsync(db, allowed.UserIds, ct), await PreApprovedAsync(db, ct)));
    }

    /// <summary>["*"] is everyone; otherwise each entry must name an existing user (case-insensitive).</summary>
    private static async Task<(bool Everyone, List<Guid> UserIds)> ResolveAllowedUsersAsync(AppDbContext db, List<string> entries, Dictionary<string, string[]> errors, CancellationToken ct)
    {
        if (entries.Count > MaxAllowedUsers)
        {
            errors["allowedUsers"] = [$"At most {MaxAllowedUsers} users."];
            return (false, []);
        }
        if (entries.Contains(Everyone))
        {
            if (entries.Count > 1) errors["allowedUsers"] = ["\"*\" (everyone) stands alone; list user names, or [\"*\"]."];
            return (true, []);
        }
        var normalized = entries.Select(e => (e ?? "").Trim().ToUpperInvariant()).Distinct().ToList();
        var found = await db.Users.AsNoTracking().Where(u => normalized.Contains(u.NormalizedUserName!)).Select(u => new { u.Id, u.NormalizedUserName }).ToListAsync(ct);
        var unknown = entries.Where(e => found.All(f => f.NormalizedUserName != (e ?? "").Trim().ToUpperInvariant())).ToList();
        if (unknown.Count > 0) errors["allowedUsers"] = [$"No user named {string.Join(", ", unknown.Select(u => $"'{u}'"))}."];
        return (false, found.Select(f => f.Id).ToList());
    }

    private static async Task<Dictionary<Guid, string>> UserNamesAsync(AppDbContext db, IEnumerable<Guid> ids, CancellationToken ct)
    {
        var wanted = ids.Distinct().ToList();
        return await db.Users.AsNoTracking().Where(u => wanted.Contains(u.Id)).ToDictionaryAsync(u => u.Id, u => u.UserName ?? "", ct);
    }

    private static async Task<HashSet<string>> PreApprovedAsync(AppDbContext db, CancellationToken ct) =>
        (await db.ToolPolicies.AsNoTracking().Where(p => p.PreApproved).Select(p => p.Tool).ToListAsync(ct)).ToHashSet(StringComparer.Ordinal);

    private static async Task<Results<NoContent, ProblemHttpResult>> Delete(string name, AppDbContext db, McpServerCatalog catalog, CancellationToken ct)
    {
        var deleted = await db.McpServers.Where(s => s.Name == name).ExecuteDeleteAsync(ct);
        if (deleted == 0) return Problems.NotFound($"No MCP server named '{name}'.");
        await catalog.ForgetAsync(name);
        return TypedResults.NoContent();
    }

    private static Dictionary<string, string[]> Validate(McpServerRequest r)
    {
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrEmpty(r.Name)) errors["name"] = ["Name is required."];
        else if (!NamePattern().IsMatch(r.Name)) errors["name"] = ["Name must be 1 to 40 characters of a-z, 0-9 and '-'."];
        if (string.IsNullOrWhiteSpace(r.Url)) errors["url"] = ["Url is required."];
        else if (r.Url.Length > 2000 || !Uri.TryCreate(r.Url.Trim(), UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
            errors["url"] = ["Url must be an absolute http or https URL of at most 2000 characters."];
        if (r.Headers is { } headers)
        {
            if (headers.Count > MaxHeaders) errors["headers"] = [$"At most {MaxHeaders} headers."];
            else if (headers.Any(h => !HeaderNamePattern().IsMatch(h.Key) || h.Value is null || h.Value.Length > 4000 || h.Value.Any(c => c is '\r' or '\n' or '\0')))
                errors["headers"] = ["Header names must be HTTP tokens; values at most 4000 characters without line breaks."];
        }
        return errors;
    }

    private static McpServerView View(McpServerRegistration s, McpServerState? state, Dictionary<Guid, string> userNames, HashSet<string> preApproved) => new(
        s.Id, s.Name, s.Url, McpServerHeaders.Parse(s.Headers)?.Keys.Order(StringComparer.OrdinalIgnoreCase).ToList() ?? [],
        s.AllUsers ? [Everyone] : s.AllowedUsers.Select(u => userNames.GetValueOrDefault(u.UserId, u.UserId.ToString())).Order(StringComparer.OrdinalIgnoreCase).ToList(),
        s.CreatedAt, state?.Reachable ?? false, state is null ? "Not checked yet." : state.Error, state?.CheckedAt,
        state?.Tools.Select(t =>
        {
            var name = McpToolProvider.ToolName(s.Name, t.Name);
            return new McpToolView(name, t.Name, t.Description, t.ProtocolTool.Annotations?.ReadOnlyHint == true, SideEffects: true,
                McpToolProvider.Risk(t).ToString().ToLowerInvariant(), preApproved.Contains(name));
        }).ToList() ?? []);

    [GeneratedRegex("^[a-z0-9-]{1,40}$")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")]
    private static partial Regex HeaderNamePattern();
}

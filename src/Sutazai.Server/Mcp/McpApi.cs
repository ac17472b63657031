using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Sutazai.Data;
using Sutazai.Data.Entities;
using Sutazai.Server.Identity;

namespace Sutazai.Server.Mcp;

public sealed record McpServerRequest(string? Name, string? Url, Dictionary<string, string>? Headers);

public sealed record McpToolView(string Name, string OriginalName, string? Description, bool ReadOnly, bool SideEffects);

/// <summary>A registration with what this process last saw; header values are secrets and never returned.</summary>
public sealed record McpServerView(
    Guid Id, string Name, string Url, IReadOnlyList<string> Headers, DateTime CreatedAt, bool Reachable, string? Error, DateTime? CheckedAt,
    IReadOnlyList<McpToolView> Tools);

public static partial class McpApi
{
    public const int MaxHeaders = 20;

    /// <summary>SutazAI's own MCP server at <c>/mcp</c> and the admin routes for external MCP servers.</summary>
    public static IEndpointRouteBuilder MapMcpApi(this IEndpointRouteBuilder routes)
    {
        routes.MapMcp("/mcp").RequireAuthorization(ScopePolicies.Mcp).WithTags("MCP");

        var admin = routes.MapGroup("/api/v1/admin/mcp-servers").WithTags("Admin").RequireAuthorization(IdentitySetup.AdminPolicy);
        admin.MapGet("", List).WithSummary("The registered external MCP servers, each with reachability and its tools as agents see them.");
        admin.MapPost("", Register).WithSummary("Register an external MCP server (Streamable HTTP or SSE); its tools join the 'mcp' tool family.");
        admin.MapDelete("/{name}", Delete).WithSummary("Remove an external MCP server.");
        return routes;
    }

    private static async Task<Ok<List<McpServerView>>> List(AppDbContext db, McpServerCatalog catalog, CancellationToken ct)
    {
        var servers = await db.McpServers.AsNoTracking().OrderBy(s => s.Name).ToListAsync(ct);
        return TypedResults.Ok(servers.Select(s => View(s, catalog.Find(s.Name) is { } state && state.Server.Id == s.Id ? state : null)).ToList());
    }

    private static async Task<Results<Created<McpServerView>, ProblemHttpResult>> Register(
        McpServerRequest request, HttpContext http, AppDbContext db, McpServerCatalog catalog, TimeProvider time, CancellationToken ct)
    {
        var errors = Validate(request);
        if (errors.Count > 0) return Problems.Validation(errors);
        var name = request.Name!;
        if (await db.McpServers.AnyAsync(s => s.Name == name, ct)) return Problems.Conflict($"An MCP server named '{name}' is already registered.");
        var server = new McpServerRegistration
        {
            Id = Guid.NewGuid(),
            Name = name,
            Url = request.Url!.Trim(),
            Headers = request.Headers is { Count: > 0 } headers ? JsonSerializer.Serialize(headers) : null,
            CreatedBy = http.User.UserId(),
            CreatedAt = time.GetUtcNow().UtcDateTime,
        };
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
        return TypedResults.Created($"/api/v1/admin/mcp-servers/{server.Name}", View(server, state));
    }

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

    private static McpServerView View(McpServerRegistration s, McpServerState? state) => new(
        s.Id, s.Name, s.Url, McpServerHeaders.Parse(s.Headers)?.Keys.Order(StringComparer.OrdinalIgnoreCase).ToList() ?? [], s.CreatedAt,
        state?.Reachable ?? false, state is null ? "Not checked yet." : state.Error, state?.CheckedAt,
        state?.Tools.Select(t =>
        {
            var readOnly = t.ProtocolTool.Annotations?.ReadOnlyHint == true;
            return new McpToolView(McpToolProvider.ToolName(s.Name, t.Name), t.Name, t.Description, readOnly, !readOnly);
        }).ToList() ?? []);

    [GeneratedRegex("^[a-z0-9-]{1,40}$")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")]
    private static partial Regex HeaderNamePattern();
}

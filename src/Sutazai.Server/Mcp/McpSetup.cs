using ModelContextProtocol.AspNetCore;
using Sutazai.Agents.Tools;

namespace Sutazai.Server.Mcp;

public static class McpSetup
{
    /// <summary>
    /// SutazAI as an MCP server (Streamable HTTP, stateless: every request carries its own credential and any instance
    /// can answer it) and the "mcp" tool family backed by the external servers admins register. Each tool names the
    /// scope it needs (<c>[Authorize]</c>): a key sees and calls only the tools its scopes allow.
    /// </summary>
    public static WebApplicationBuilder AddSutazaiMcp(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddMcpServer(o => o.ServerInfo = new() { Name = "sutazai", Version = typeof(McpSetup).Assembly.GetName().Version?.ToString() ?? "1.0.0" })
            .WithHttpTransport(o => o.Stateless = true)
            .AddAuthorizationFilters()
            .WithTools([typeof(SutazaiMcpTools)]);
        services.AddSingleton<McpServerCatalog>();
        services.AddHostedService<McpServerRefresher>();
        services.AddSingleton<McpToolProvider>();
        services.AddSingleton<IToolProvider>(sp => sp.GetRequiredService<McpToolProvider>());
        return builder;
    }
}

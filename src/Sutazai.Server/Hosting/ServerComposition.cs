using Sutazai.Agents;
using Sutazai.Server.Agents;
using Sutazai.Agents.Tools;
using Sutazai.Server.Chat;
using Sutazai.Server.Conversations;
using Sutazai.Server.Data;
using Sutazai.Server.Graph;
using Sutazai.Server.Health;
using Sutazai.Server.Identity;
using Sutazai.Server.Inference;
using Sutazai.Server.Knowledge;
using Sutazai.Server.Mcp;
using Sutazai.Server.OpenAICompatible;
using Sutazai.Server.Tasks;
using Sutazai.Server.Ui;
using Sutazai.Server.Vectors;

namespace Sutazai.Server.Hosting;

/// <summary>
/// The whole server, feature by feature. One list, so that <c>sutazai serve</c>, <c>sutazai config check</c> and
/// <c>sutazai doctor</c> register (and validate, and health-check) exactly the same services.
/// </summary>
public static class ServerComposition
{
    public static WebApplicationBuilder AddSutazaiServer(this WebApplicationBuilder builder)
    {
        builder.AddSutazaiDefaults();
        builder.AddSutazaiDatabase();
        builder.AddSutazaiIdentity();
        builder.AddSutazaiInference();
        builder.AddSutazaiConversations();
        builder.AddSutazaiOpenAICompatible();
        builder.AddSutazaiKnowledge();
        builder.AddAgentTools();
        builder.AddSutazaiVectors();
        builder.AddSutazaiAgents();
        builder.AddSutazaiMcp();
        builder.AddSutazaiGraph();
        builder.AddSutazaiTasks();
        builder.AddSutazaiUi();
        IdentitySetup.RemoveKeyRingPrefetch(builder.Services); // after every AddDataProtection(): the warm-up reads the key ring
        return builder;
    }

    public static WebApplication MapSutazaiServer(this WebApplication app)
    {
        app.UseSutazaiDefaults();
        app.MapHealthApi();
        if (!app.Configuration.ServesApi()) return app;
        app.MapAuthApi();
        app.MapUsersApi();
        app.MapApiKeysApi();
        app.MapModelsApi();
        app.MapGenerateApi();
        app.MapConversationsApi();
        app.MapChatSockets();
        app.MapOpenAICompatibleApi();
        app.MapKnowledgeApi();
        app.MapVectorsApi();
        app.MapTasksAdminApi();
        app.MapNodesApi();
        app.MapAgentsApi();
        app.MapJarvisSocket();
        app.MapMcpApi();
        app.MapGraphApi();
        app.MapSutazaiUi();
        return app;
    }
}

using Sutazai.Server.Agents;
using Sutazai.Server.Agents.Tools;
using Sutazai.Server.Chat;
using Sutazai.Server.Configuration;
using Sutazai.Server.Conversations;
using Sutazai.Server.Data;
using Sutazai.Server.Graph;
using Sutazai.Server.Health;
using Sutazai.Server.Hosting;
using Sutazai.Server.Identity;
using Sutazai.Server.Inference;
using Sutazai.Server.Knowledge;
using Sutazai.Server.Mcp;
using Sutazai.Server.OpenAICompatible;
using Sutazai.Server.Tasks;
using Sutazai.Server.Vectors;
using Sutazai.Server.Ui;

if (Cli.TryRun(args, Console.Out) is { } exitCode) return exitCode;
if (await ModelCommands.TryRunAsync(args, Console.Out, Console.Error) is { } modelExitCode) return modelExitCode;

var builder = WebApplication.CreateBuilder(args);
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

var app = builder.Build();
app.UseSutazaiDefaults();
app.MapHealthApi();
if (app.Configuration.ServesApi())
{
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
    app.MapAgentsApi();
    app.MapJarvisSocket();
    app.MapMcpApi();
    app.MapGraphApi();
    app.MapSutazaiUi();
}

await app.RunAsync();
return 0;

public partial class Program;

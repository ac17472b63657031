using Sutazai.Server.Cli;
using Sutazai.Server.Hosting;

// Every command line goes through the CLI; `sutazai` alone and `sutazai serve` come back here to run the server.
return await SutazaiCli.RunAsync(args, async hostArgs =>
{
    var builder = WebApplication.CreateBuilder(HostPaths.Options(hostArgs));
    builder.AddSutazaiServer();
    var app = builder.Build();
    app.MapSutazaiServer();
    await app.RunAsync();
    return ExitCodes.Ok;
});

public partial class Program;

using Sutazai.Server.Cli;
using Sutazai.Server.Hosting;

// Every command line goes through the CLI; `sutazai` alone and `sutazai serve` come back here to run the server.
return await SutazaiCli.RunAsync(args, async hostArgs =>
{
    var builder = WebApplication.CreateBuilder(HostPaths.Options(hostArgs));
    builder.AddSutazaiServer();
    var app = builder.Build();
    app.MapSutazaiServer();
    var warmup = app.Services.GetRequiredService<Warmup>();
    await app.RunAsync();
    // A start-up that failed in the background (an unreachable database) stopped the host: say so in the exit code.
    // A stop asked for while it was still warming up (Ctrl+C, systemctl stop) is not a failure.
    return warmup.Failure is null or OperationCanceledException ? ExitCodes.Ok : ExitCodes.Failed;
});

public partial class Program;

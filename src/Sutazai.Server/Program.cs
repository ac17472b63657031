using Sutazai.Server.Configuration;
using Sutazai.Server.Data;
using Sutazai.Server.Health;
using Sutazai.Server.Hosting;
using Sutazai.Server.Identity;

if (Cli.TryRun(args, Console.Out) is { } exitCode) return exitCode;

var builder = WebApplication.CreateBuilder(args);
builder.AddSutazaiDefaults();
builder.AddSutazaiDatabase();
builder.AddSutazaiIdentity();

var app = builder.Build();
app.UseSutazaiDefaults();
app.MapHealthApi();
app.MapAuthApi();
app.MapUsersApi();

await app.RunAsync();
return 0;

public partial class Program;

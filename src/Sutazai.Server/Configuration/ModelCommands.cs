using System.Globalization;
using Sutazai.Inference;
using Sutazai.Inference.Pull;
using Sutazai.Server.Inference;

namespace Sutazai.Server.Configuration;

/// <summary><c>sutazai pull</c> and <c>sutazai models</c>: the API's services, run from the command line.</summary>
public static class ModelCommands
{
    public static async Task<int?> TryRunAsync(string[] args, TextWriter output, TextWriter error)
    {
        if (args is not ["pull" or "models", ..]) return null;
        var settings = args.Skip(1).Where(a => a.StartsWith("--", StringComparison.Ordinal)).ToArray();
        var positional = args.Skip(1).Where(a => !a.StartsWith("--", StringComparison.Ordinal)).ToArray();

        var builder = WebApplication.CreateBuilder(settings);
        builder.Logging.ClearProviders();
        builder.AddSutazaiSettings();
        builder.Services.AddMetrics();
        builder.Services.AddSingleton<Hosting.SutazaiMetrics>();
        builder.Services.AddSingleton(TimeProvider.System);
        Data.DatabaseSetup.AddSutazaiDatabase(builder); // the administrator's run-time choices (Ollama address, default model) live there
        builder.AddSutazaiInference();
        await using var app = builder.Build();
        await app.Services.GetServices<IHostedService>().OfType<Data.DatabaseMigrator>().Single().StartingAsync(CancellationToken.None);

        if (args[0] == "models") return await ListAsync(app.Services, output);
        if (positional.Length != 1)
        {
            error.WriteLine("usage: sutazai pull <hf:owner/repo/file.gguf | https://…/file.gguf | ollama-name>");
            return 2;
        }
        return await PullAsync(app.Services, positional[0], output, error);
    }

    private static async Task<int> ListAsync(IServiceProvider services, TextWriter output)
    {
        var catalog = services.GetRequiredService<ModelCatalog>();
        var listing = await catalog.ListAsync(CancellationToken.None);
        if (listing.Models.Count == 0) output.WriteLine("No models. Pull one: sutazai pull " + ModelCatalogue.Entries[0].Source);
        else
        {
            output.WriteLine($"{"ID",-44} {"PROVIDER",-9} {"SIZE",10} {"CONTEXT",8} {"FAMILY",-10} QUANT");
            foreach (var m in listing.Models)
                output.WriteLine($"{m.Id,-44} {m.Provider,-9} {Size(m.SizeBytes),10} {m.ContextLength?.ToString(CultureInfo.InvariantCulture) ?? "-",8} {m.Family ?? "-",-10} {m.Quantization ?? "-"}");
        }
        foreach (var problem in listing.Problems) output.WriteLine($"! {problem.Provider}: {problem.Detail}");
        return 0;
    }

    private static async Task<int> PullAsync(IServiceProvider services, string source, TextWriter output, TextWriter error)
    {
        var pulls = services.GetRequiredService<PullService>();
        PullSnapshot started;
        try
        {
            started = await pulls.StartAsync(source);
        }
        catch (FormatException ex)
        {
            error.WriteLine(ex.Message);
            return 2;
        }
        var interactive = !Console.IsOutputRedirected && ReferenceEquals(output, Console.Out);
        var lastPercent = -10;
        PullSnapshot last = started;
        await foreach (var snapshot in pulls.WatchAsync(started.Id, CancellationToken.None)!)
        {
            last = snapshot;
            var line = ProgressLine(snapshot);
            if (interactive) output.Write("\r" + line.PadRight(100));
            else
            {
                var percent = snapshot.TotalBytes is > 0 ? (int)(snapshot.Bytes * 100 / snapshot.TotalBytes.Value) : 0;
                if (percent >= lastPercent + 10 || snapshot.IsFinished)
                {
                    output.WriteLine(line);
                    lastPercent = percent;
                }
            }
        }
        if (interactive) output.WriteLine();
        if (last.Status == PullStatus.Completed)
        {
            output.WriteLine($"Pulled {last.Source} as model '{last.ModelId}'.");
            return 0;
        }
        error.WriteLine($"Pull failed: {last.Error}");
        return 1;
    }

    public static string ProgressLine(PullSnapshot s)
    {
        const int width = 30;
        var fraction = s.TotalBytes is > 0 ? Math.Clamp(s.Bytes / (double)s.TotalBytes.Value, 0, 1) : 0;
        var filled = (int)Math.Round(fraction * width);
        var bar = new string('#', filled) + new string('-', width - filled);
        var total = s.TotalBytes is { } t ? Size(t) : "?";
        var rate = s.BytesPerSecond > 0 ? $"{Size((long)s.BytesPerSecond)}/s" : "";
        return string.Create(CultureInfo.InvariantCulture, $"[{bar}] {fraction * 100,5:F1}% {Size(s.Bytes)} / {total} {rate} {s.Status.ToString().ToLowerInvariant()}").TrimEnd();
    }

    private static string Size(long? bytes) => bytes switch
    {
        null => "-",
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):F2} GB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):F1} MB"),
        >= 1L << 10 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:F1} KB"),
        _ => $"{bytes} B",
    };
}

using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using Sutazai.Inference;
using Sutazai.Inference.Pull;
using Sutazai.Server.Inference;

namespace Sutazai.Server.Cli;

/// <summary><c>sutazai models list|pull|rm</c>: the model services the API uses, run from the command line.</summary>
public static class ModelCommands
{
    public static void AddTo(RootCommand root, CliContext context)
    {
        var models = new Command("models", "Language models of every configured provider: list, pull (download), rm.");

        var json = UserCommands.JsonOption();
        var list = new Command("list", "Every model of every configured provider (local GGUF files, Ollama, an OpenAI-compatible server).") { json };
        list.Act(context, async (parse, ct) =>
        {
            await using var host = await OfflineHost.StartAsync(context.Settings, withInference: true, ct, readOnly: true);
            var listing = await host.Services.GetRequiredService<ModelCatalog>().ListAsync(ct);
            if (parse.GetValue(json))
            {
                context.Console.WriteJson(listing);
                return ExitCodes.Ok;
            }
            if (listing.Models.Count == 0) context.Console.Line("No models. Pull one: sutazai models pull " + ModelCatalogue.Entries[0].Source);
            else context.Console.Table(["ID", "PROVIDER", "SIZE", "CONTEXT", "FAMILY", "QUANT"], listing.Models.Select(m => new[]
            {
                m.Id, m.Provider, CliConsole.Size(m.SizeBytes), m.ContextLength?.ToString(CultureInfo.InvariantCulture), m.Family, m.Quantization,
            }));
            foreach (var problem in listing.Problems) context.Console.Warn($"{problem.Provider}: {problem.Detail}");
            return ExitCodes.Ok;
        });
        models.Subcommands.Add(list);

        var source = new Argument<string>("source") { Description = "hf:owner/repo/file.gguf[@revision], an https://…/file.gguf URL, or an Ollama model name (llama3.2:1b)." };
        var pull = new Command("pull", "Download a model into the models folder, with progress; an interrupted pull resumes where it stopped when run again.") { source };
        pull.Act(context, async (parse, ct) =>
        {
            await using var host = await OfflineHost.StartAsync(context.Settings, withInference: true, ct);
            using var interrupt = new Interrupt();
            return await PullAsync(host.Services.GetRequiredService<PullService>(), parse.GetRequiredValue(source), context.Console, interrupt.Token);
        });
        models.Subcommands.Add(pull);

        var id = new Argument<string>("model") { Description = "The id of a local GGUF model (as listed)." };
        var rm = new Command("rm", "Delete a local GGUF model (models of Ollama or an OpenAI-compatible server are managed there).") { id };
        rm.Act(context, async (parse, ct) =>
        {
            await using var host = await OfflineHost.StartAsync(context.Settings, withInference: true, ct);
            var model = parse.GetRequiredValue(id);
            if (await host.Services.GetRequiredService<LocalModels>().DeleteAsync(model, ct) is { } problem) throw new CliException(ExitCodes.NotFound, problem);
            context.Console.Line($"Deleted model '{model}'.");
            return ExitCodes.Ok;
        });
        models.Subcommands.Add(rm);
        root.Subcommands.Add(models);
    }

    private static async Task<int> PullAsync(PullService pulls, string source, CliConsole console, CancellationToken ct)
    {
        PullSnapshot last;
        try
        {
            last = await pulls.StartAsync(source, ct);
        }
        catch (FormatException ex)
        {
            throw new CliException(ExitCodes.Usage, ex.Message);
        }
        try
        {
            if (console.Interactive)
            {
                await console.Ansi.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn())
                    .StartAsync(async progress =>
                    {
                        var task = progress.AddTask(Markup.Escape(source), maxValue: 1);
                        await foreach (var snapshot in pulls.WatchAsync(last.Id, ct)!)
                        {
                            last = snapshot;
                            if (snapshot.TotalBytes is > 0) task.MaxValue = snapshot.TotalBytes.Value;
                            task.Value = snapshot.Bytes;
                        }
                        if (last.Status == PullStatus.Completed) task.Value = task.MaxValue;
                    });
            }
            else
            {
                var lastPercent = -10;
                await foreach (var snapshot in pulls.WatchAsync(last.Id, ct)!)
                {
                    last = snapshot;
                    var percent = snapshot.TotalBytes is > 0 ? (int)(snapshot.Bytes * 100 / snapshot.TotalBytes.Value) : 0;
                    if (percent < lastPercent + 10 && !snapshot.IsFinished) continue;
                    console.Line(ProgressLine(snapshot));
                    lastPercent = percent;
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The partial file stays in <models>/.partial: the downloader resumes it with an HTTP Range request.
            console.Error.WriteLine($"Stopped at {CliConsole.Size(last.Bytes)}; run the same pull again to resume from there.");
            return ExitCodes.Interrupted;
        }
        if (last.Status == PullStatus.Completed)
        {
            console.Line($"Pulled {last.Source} as model '{last.ModelId}'.");
            return ExitCodes.Ok;
        }
        throw new CliException(ExitCodes.Failed, $"Pull failed: {last.Error}");
    }

    public static string ProgressLine(PullSnapshot s)
    {
        const int width = 30;
        var fraction = s.TotalBytes is > 0 ? Math.Clamp(s.Bytes / (double)s.TotalBytes.Value, 0, 1) : 0;
        var filled = (int)Math.Round(fraction * width);
        var bar = new string('#', filled) + new string('-', width - filled);
        var total = s.TotalBytes is { } t ? CliConsole.Size(t) : "?";
        var rate = s.BytesPerSecond > 0 ? $"{CliConsole.Size((long)s.BytesPerSecond)}/s" : "";
        return string.Create(CultureInfo.InvariantCulture, $"[{bar}] {fraction * 100,5:F1}% {CliConsole.Size(s.Bytes)} / {total} {rate} {s.Status.ToString().ToLowerInvariant()}").TrimEnd();
    }
}

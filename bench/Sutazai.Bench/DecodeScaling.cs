using System.Diagnostics;
using System.Globalization;
using LLama;
using LLama.Common;
using LLama.Native;
using LLama.Sampling;
using Sutazai.Inference.Gguf;

/// <summary>
/// What a decode step costs by batch width on the benchmark model: llama_decode of 1, 2, 4 and 8 tokens (one per
/// sequence), from one dedicated thread, with and without greedy sampling, for a few thread counts. It separates the
/// library's arithmetic from the scheduler and HTTP costs when reading P2.
/// </summary>
internal static class DecodeScaling
{
    public static Task<int> RunAsync(int steps, IReadOnlyList<int> threadCounts, IReadOnlyList<int> keptCounts, IReadOnlyList<bool> flashModes) =>
        WithModelAsync(modelPath =>
        {
            Console.WriteLine($"machine: {Environment.ProcessorCount} cores; {steps} steps per row; ms per llama_decode (median), tokens/s");
            Console.WriteLine("| threads | flash attention | tokens kept in other sequences | batch width | ms/step | +greedy sample ms/step | tokens/s | ÷ width 1 |");
            Console.WriteLine("|---|---|---|---|---|---|---|---|");
            foreach (var threads in threadCounts)
            foreach (var flash in flashModes)
            foreach (var kept in keptCounts)
            {
                double? single = null;
                foreach (var width in new[] { 1, 2, 4, 8 })
                {
                    var (decodeMs, sampleMs) = MeasureOnOwnThread(modelPath, threads, width, steps, kept, flash);
                    var rate = width * 1000 / (decodeMs + sampleMs);
                    single ??= rate;
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {threads} | {(flash ? "on" : "off")} | {kept} | {width} | {decodeMs:F2} | {sampleMs:F2} | {rate:F1} | {rate / single:F2}× |"));
                }
            }
            return Task.FromResult(0);
        });

    /// <summary>Writes the benchmark model to a temporary folder, runs <paramref name="body"/> on it, and deletes it.</summary>
    private static async Task<int> WithModelAsync(Func<string, Task<int>> body)
    {
        var work = Directory.CreateTempSubdirectory("sutazai-scaling-").FullName;
        try
        {
            var modelPath = Path.Combine(work, "bench-random.gguf");
            TinyModels.WriteRandom(modelPath, new RandomModelSpec());
            NativeLibraryConfig.All.WithLogCallback((_, _) => { });
            return await body(modelPath);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>
    /// The scheduler alone (in-process <c>LlamaEngine</c>, no HTTP): aggregate tokens/s of 4 concurrent requests ÷ 1,
    /// next to raw llama_decode's own 4 ÷ 1, for each thread count — shows how much of the library's batching the
    /// scheduler keeps, on machines with more cores than the development box.
    /// </summary>
    public static Task<int> EngineAsync(int tokens, int repeats, IReadOnlyList<int> threadCounts) =>
        WithModelAsync(async modelPath =>
        {
            Console.WriteLine($"machine: {Environment.ProcessorCount} cores; {tokens} tokens per request; median of {repeats} rounds");
            Console.WriteLine("| threads | engine 1 request tok/s | engine 4 requests tok/s | engine 4 ÷ 1 | raw llama_decode 1 seq tok/s | raw 4 seqs tok/s | raw 4 ÷ 1 |");
            Console.WriteLine("|---|---|---|---|---|---|---|");
            foreach (var threads in threadCounts)
            {
                var options = new Sutazai.Inference.LlamaCppOptions { Threads = threads, ContextSize = 8192, ParallelSlots = 4, PrefixCacheEntries = 4, BatchSize = 512 };
                await using var engine = await Sutazai.Inference.LlamaCpp.LlamaEngine.LoadAsync("bench", modelPath, options, 2048,
                    Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, CancellationToken.None);
                async Task<int> Request(string prompt)
                {
                    var count = 0;
                    await foreach (var e in engine.GenerateAsync(engine.Tokenize(prompt, addBos: true), Sutazai.Inference.LlamaCpp.SamplingSettings.Greedy, tokens, [], CancellationToken.None))
                        if (e is Sutazai.Inference.LlamaCpp.EngineEvent.Finished f) count = f.Stats.CompletionTokens;
                    return count;
                }
                await Request("warm up");
                var ones = new List<double>();
                var fours = new List<double>();
                for (var r = 0; r < repeats; r++)
                {
                    var sw = Stopwatch.StartNew();
                    var n = await Request($"Once upon a time {r}");
                    ones.Add(n / sw.Elapsed.TotalSeconds);
                    sw.Restart();
                    var counts = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => Request($"Stream {i} of round {r} says")));
                    fours.Add(counts.Sum() / sw.Elapsed.TotalSeconds);
                }
                var (rawOne, rawFour) = Ceiling(modelPath, threads, flash: true, steps: tokens);
                var one = Median(ones);
                var four = Median(fours);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {threads} | {one:F1} | {four:F1} | {four / one:F2}× | {rawOne:F1} | {rawFour:F1} | {rawFour / rawOne:F2}× |"));
            }
            return 0;
        });

    /// <summary>Tokens/s of raw llama_decode + greedy sampling with 1 and with 4 sequences: the library's own ceiling for P2.</summary>
    public static (double One, double Four) Ceiling(string modelPath, int threads, bool flash, int steps)
    {
        double Rate(int width)
        {
            var (decodeMs, sampleMs) = MeasureOnOwnThread(modelPath, threads, width, steps, 0, flash);
            return width * 1000 / (decodeMs + sampleMs);
        }
        return (Rate(1), Rate(4));
    }

    /// <summary>One fresh thread drives llama_decode, as the engine's dedicated thread does (one OpenMP master).</summary>
    private static (double DecodeMs, double SampleMs) MeasureOnOwnThread(string modelPath, int threads, int width, int steps, int kept, bool flash)
    {
        (double, double) result = default;
        var thread = new Thread(() => result = Measure(modelPath, threads, width, steps, kept, flash), 16 * 1024 * 1024);
        thread.Start();
        thread.Join();
        return result;
    }

    private static (double DecodeMs, double SampleMs) Measure(string modelPath, int threads, int width, int steps, int kept, bool flash)
    {
        // The server's shape: one unified KV cache of 8192 cells shared by 4 running and 4 kept sequences.
        var parameters = new ModelParams(modelPath) { ContextSize = 8192, BatchSize = 512, UBatchSize = 512, Threads = threads, BatchThreads = threads, GpuLayerCount = 0, SeqMax = 9 };
        parameters.KVUnified = true;
        parameters.FlashAttention = flash;
        using var weights = LLamaWeights.LoadFromFile(parameters);
        using var context = weights.CreateContext(parameters);
        var prompt = context.Tokenize("Once upon a time there was", true, true);
        var batch = new LLamaBatch();
        if (kept > 0)
        {
            // A finished conversation kept for prefix reuse (sequence 8), as the engine keeps them.
            var vocab = (int)weights.Vocab.Count;
            for (var start = 0; start < kept; start += 512)
            {
                batch.Clear();
                for (var i = start; i < Math.Min(kept, start + 512); i++) batch.Add((LLamaToken)(1 + i * 7919 % (vocab - 1)), i, (LLamaSeqId)8, false);
                if (context.NativeHandle.Decode(batch) != DecodeResult.Ok) throw new InvalidOperationException("kept decode failed");
            }
            batch.Clear();
        }
        for (var s = 0; s < width; s++)
            for (var i = 0; i < prompt.Length; i++) batch.Add(prompt[i], i, (LLamaSeqId)s, i == prompt.Length - 1);
        if (context.NativeHandle.Decode(batch) != DecodeResult.Ok) throw new InvalidOperationException("prompt decode failed");
        var samplers = Enumerable.Range(0, width).Select(_ => new GreedySamplingPipeline()).ToList();
        var decodeTimes = new List<double>();
        var sampleTimes = new List<double>();
        var position = prompt.Length;
        var next = Enumerable.Range(0, width).Select(s => samplers[s].Sample(context.NativeHandle, prompt.Length * s + prompt.Length - 1)).ToArray();
        for (var step = 0; step < steps; step++)
        {
            batch.Clear();
            for (var s = 0; s < width; s++) batch.Add(next[s], position, (LLamaSeqId)s, true);
            position++;
            var t0 = Stopwatch.GetTimestamp();
            if (context.NativeHandle.Decode(batch) != DecodeResult.Ok) throw new InvalidOperationException("decode failed");
            var t1 = Stopwatch.GetTimestamp();
            for (var s = 0; s < width; s++) next[s] = samplers[s].Sample(context.NativeHandle, s);
            var t2 = Stopwatch.GetTimestamp();
            decodeTimes.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
            sampleTimes.Add(Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds);
        }
        foreach (var sampler in samplers) sampler.Dispose();
        return (Median(decodeTimes), Median(sampleTimes));
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }
}

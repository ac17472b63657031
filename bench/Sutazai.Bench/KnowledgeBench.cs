using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Cloud.Unum.USearch;
using Sutazai.Knowledge.Embeddings;
using Sutazai.Knowledge.Vectors;

/// <summary>
/// Knowledge benchmarks (issue 5). P4 (<c>--scenario vectors</c>): N random 384-d vectors — recall@10 and QPS of our
/// USearch store against exact brute force, and search QPS through POST /api/v1/vectors/{c}/search against the raw
/// USearch index over the same vectors. P5 (<c>--scenario ingest</c>): chunks/s of uploads indexed by the server
/// against raw MiniLM batch embeddings/s over texts of the same count and size.
/// </summary>
internal static class KnowledgeBench
{
    private const int Dims = 384;

    public static async Task<int> VectorsAsync(string serverDll, int n, int apiN, int queries)
    {
        var random = new Random(42);
        float[] Next() { var v = new float[Dims]; for (var i = 0; i < Dims; i++) v[i] = (float)(random.NextDouble() * 2 - 1); return v; }
        var data = Enumerable.Range(0, n).Select(_ => Next()).ToArray();
        var qs = Enumerable.Range(0, queries).Select(_ => Next()).ToArray();
        var work = Directory.CreateTempSubdirectory("sutazai-bench-vectors-").FullName;
        try
        {
            // Exact: normalised dot products over everything, top 10.
            var normalised = data.Select(Normalise).ToArray();
            var sw = Stopwatch.StartNew();
            var truth = qs.Select(q => ExactTop(normalised, Normalise(q), 10)).ToArray();
            var exactQps = queries / sw.Elapsed.TotalSeconds;

            var owner = Guid.NewGuid();
            var ids = Enumerable.Range(0, n).Select(_ => Guid.NewGuid()).ToArray();
            var index = new Dictionary<Guid, int>(n);
            for (var i = 0; i < n; i++) index[ids[i]] = i;
            using var store = new USearchVectorStore(Path.Combine(work, "store"));
            await store.EnsureCollectionAsync(Dims);
            sw.Restart();
            for (var start = 0; start < n; start += 10_000)
                await store.UpsertAsync([.. Enumerable.Range(start, Math.Min(10_000, n - start)).Select(i => new VectorRecord(ids[i], owner, null, owner, data[i]))]);
            var buildSeconds = sw.Elapsed.TotalSeconds;
            var filter = VectorFilter.Owner(owner);
            var found = 0;
            sw.Restart();
            for (var q = 0; q < queries; q++)
            {
                var hits = await store.SearchAsync(qs[q], 10, filter);
                found += hits.Count(h => truth[q].Contains(index[h.Id]));
            }
            var storeQps = queries / sw.Elapsed.TotalSeconds;
            var recall = found / (10.0 * queries);

            // API overhead: the same first apiN vectors in the server and in a raw USearch index.
            using var raw = new USearchIndex(MetricKind.Cos, ScalarKind.Float32, Dims);
            for (var i = 0; i < apiN; i++) raw.Add((ulong)i + 1, data[i]);
            sw.Restart();
            for (var q = 0; q < queries; q++) raw.Search(qs[q], 10, out ulong[] _, out float[] _);
            var rawQps = queries / sw.Elapsed.TotalSeconds;

            await using var server = await ServerProcess.StartAsync(serverDll, Path.Combine(work, "data"), Environment.ProcessorCount);
            var client = await server.SignedInClientAsync();
            sw.Restart();
            for (var start = 0; start < apiN; start += 1000)
            {
                var points = Enumerable.Range(start, Math.Min(1000, apiN - start)).Select(i => new { id = i.ToString(CultureInfo.InvariantCulture), vector = data[i] });
                (await client.PostAsJsonAsync("/api/v1/vectors/bench", new { points })).EnsureSuccessStatusCode();
            }
            var apiUpsertSeconds = sw.Elapsed.TotalSeconds;
            (await client.PostAsJsonAsync("/api/v1/vectors/bench/search", new { vector = qs[0], k = 10 })).EnsureSuccessStatusCode();
            sw.Restart();
            for (var q = 0; q < queries; q++)
                (await client.PostAsJsonAsync("/api/v1/vectors/bench/search", new { vector = qs[q], k = 10 })).EnsureSuccessStatusCode();
            var apiQps = queries / sw.Elapsed.TotalSeconds;

            Console.WriteLine(F($"machine: {Environment.ProcessorCount} cores; {n:N0} random {Dims}-d vectors, {queries} queries, k = 10, one query at a time"));
            Console.WriteLine(F($"our store build: {buildSeconds:F1} s ({n / buildSeconds:F0} vectors/s, saved every 10,000); API upsert of {apiN:N0} in batches of 1,000: {apiUpsertSeconds:F1} s"));
            Console.WriteLine();
            Console.WriteLine("| metric | SutazAI | baseline | ratio |");
            Console.WriteLine("|---|---|---|---|");
            Console.WriteLine(F($"| P4 recall@10, our USearch store vs exact brute force ({n:N0} vectors) | {recall:F3} | 1.000 | **{recall:F3}** |"));
            Console.WriteLine(F($"| P4 search QPS, our store vs exact brute force ({n:N0} vectors) | {storeQps:F0} | {exactQps:F1} | **{storeQps / exactQps:F1}×** |"));
            Console.WriteLine(F($"| P4 search QPS, POST /api/v1/vectors/{{c}}/search vs raw USearch index ({apiN:N0} vectors) | {apiQps:F0} | {rawQps:F0} | **{apiQps / rawQps:F3}** |"));
            return 0;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    public static async Task<int> IngestAsync(string serverDll, int documents, int wordsPerDocument)
    {
        var random = new Random(7);
        var vocabulary = Enumerable.Range(0, 5000).Select(i => Word(random, i)).ToArray();
        var corpus = Enumerable.Range(0, documents).Select(d =>
        {
            var text = new StringBuilder($"# Report {d}\n\n");
            for (var w = 0; w < wordsPerDocument; w++) text.Append(vocabulary[random.Next(vocabulary.Length)]).Append(w % 17 == 16 ? ".\n" : " ");
            return text.ToString();
        }).ToList();
        var work = Directory.CreateTempSubdirectory("sutazai-bench-ingest-").FullName;
        try
        {
            await using var server = await ServerProcess.StartAsync(serverDll, Path.Combine(work, "data"), Environment.ProcessorCount);
            var client = await server.SignedInClientAsync();
            // Warm-up: one small document, so model loading is not timed.
            await UploadAsync(client, "warmup.txt", "A short warm-up document about llamas.");
            await WaitAllAsync(client, 1);
            var sw = Stopwatch.StartNew();
            for (var d = 0; d < documents; d++) await UploadAsync(client, $"report-{d}.txt", corpus[d]);
            var chunks = await WaitAllAsync(client, documents + 1) - 1;
            var serverSeconds = sw.Elapsed.TotalSeconds;
            var serverRate = chunks / serverSeconds;

            // Raw: the same number of texts of the same average size through MiniLM, batches of 32.
            var words = string.Join(' ', corpus).Split(' ');
            var perChunk = Math.Max(1, words.Length / chunks);
            var texts = Enumerable.Range(0, chunks).Select(i => string.Join(' ', words.Skip(i * perChunk).Take(perChunk))).ToList();
            using var embedder = new MiniLmEmbeddingGenerator();
            await embedder.GenerateAsync(["warm up"]);
            sw.Restart();
            for (var start = 0; start < texts.Count; start += 32) await embedder.GenerateAsync(texts.Skip(start).Take(32));
            var rawRate = texts.Count / sw.Elapsed.TotalSeconds;

            Console.WriteLine(F($"machine: {Environment.ProcessorCount} cores; {documents} generated text documents of {wordsPerDocument} words → {chunks} chunks (~{perChunk} words each)"));
            Console.WriteLine();
            Console.WriteLine("| metric | SutazAI | raw MiniLM | ratio |");
            Console.WriteLine("|---|---|---|---|");
            Console.WriteLine(F($"| P5 ingestion chunks/s (upload → indexed, end to end) vs batch-of-32 embeddings/s | {serverRate:F1} | {rawRate:F1} | **{serverRate / rawRate:F2}** |"));
            return 0;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private static async Task UploadAsync(HttpClient client, string name, string text)
    {
        var form = new MultipartFormDataContent();
        var part = new ByteArrayContent(Encoding.UTF8.GetBytes(text));
        part.Headers.ContentType = new MediaTypeHeaderValue("text/plain");
        form.Add(part, "file", name);
        (await client.PostAsync("/api/v1/documents", form)).EnsureSuccessStatusCode();
    }

    /// <summary>Polls until <paramref name="expected"/> documents are indexed; returns their chunk count.</summary>
    private static async Task<int> WaitAllAsync(HttpClient client, int expected)
    {
        while (true)
        {
            var page = await client.GetFromJsonAsync<JsonElement>("/api/v1/documents?pageSize=200");
            var items = page.GetProperty("items").EnumerateArray().ToList();
            if (items.Any(i => i.GetProperty("status").GetString() == "failed"))
                throw new InvalidOperationException("A benchmark document failed to ingest.");
            if (items.Count == expected && items.All(i => i.GetProperty("status").GetString() == "indexed"))
                return items.Sum(i => i.GetProperty("chunkCount").GetInt32());
            await Task.Delay(100);
        }
    }

    private static string Word(Random random, int i)
    {
        var length = 3 + random.Next(7);
        var chars = new char[length];
        for (var c = 0; c < length; c++) chars[c] = (char)('a' + random.Next(26));
        return new string(chars) + (i % 10 == 0 ? "s" : "");
    }

    private static float[] Normalise(float[] v)
    {
        var norm = MathF.Sqrt(v.Sum(x => x * x));
        return [.. v.Select(x => x / norm)];
    }

    private static HashSet<int> ExactTop(float[][] data, float[] q, int k)
    {
        var best = new PriorityQueue<int, float>();
        for (var i = 0; i < data.Length; i++)
        {
            var dot = 0f;
            var row = data[i];
            for (var d = 0; d < row.Length; d++) dot += row[d] * q[d];
            best.Enqueue(i, dot);
            if (best.Count > k) best.Dequeue();
        }
        var top = new HashSet<int>();
        while (best.Count > 0) top.Add(best.Dequeue());
        return top;
    }

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}

using System.CommandLine;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;

namespace Sutazai.Server.Cli;

/// <summary><c>sutazai ingest</c> and <c>sutazai search</c>: documents into a running server's knowledge base, and back out.</summary>
public static class KnowledgeCommands
{
    public static void AddTo(RootCommand root, CliContext context)
    {
        var credentials = new Credentials();
        var sources = new Argument<string[]>("sources") { Description = "Files, folders (every file inside, recursively) or http(s) URLs.", Arity = ArgumentArity.OneOrMore };
        var collection = new Option<string?>("--collection", "-c") { Description = "Put them in this collection of yours (made when missing)." };
        var noWait = new Option<bool>("--no-wait") { Description = "Return once uploaded, without waiting for indexing." };
        var ingestJson = UserCommands.JsonOption();
        var ingest = new Command("ingest", "Add documents to the knowledge base, with each file's progress until it is indexed.") { sources, collection, noWait, ingestJson };
        credentials.AddTo(ingest);
        ingest.Act(context, async (parse, ct) =>
        {
            using var client = credentials.Connect(parse);
            var collectionId = parse.GetValue(collection) is { } name ? await CollectionIdAsync(client, name, ct) : (Guid?)null;
            var documents = new List<JsonElement>();
            foreach (var source in parse.GetRequiredValue(sources))
            {
                if (Uri.TryCreate(source, UriKind.Absolute, out var url) && url.Scheme is "http" or "https")
                {
                    var added = await client.PostAsync("api/v1/documents/url", new { url = source, collectionId }, ct);
                    documents.AddRange(added.GetProperty("documents").EnumerateArray());
                    continue;
                }
                var files = Directory.Exists(source) ? Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList()
                    : File.Exists(source) ? [source]
                    : throw new CliException(ExitCodes.NotFound, $"No file or folder '{source}'.");
                foreach (var file in files)
                {
                    using var form = new MultipartFormDataContent();
                    var content = new StreamContent(File.OpenRead(file));
                    content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                    form.Add(content, "file", Path.GetFileName(file));
                    if (collectionId is { } c) form.Add(new StringContent(c.ToString()), "collectionId");
                    var added = await client.PostAsync("api/v1/documents", form, ct);
                    documents.AddRange(added.GetProperty("documents").EnumerateArray());
                }
            }
            var final = new List<JsonElement>();
            foreach (var document in documents)
            {
                var last = document;
                if (!parse.GetValue(noWait) && !Finished(last))
                {
                    await foreach (var e in client.StreamAsync(HttpMethod.Get, $"api/v1/documents/{document.GetProperty("id").GetGuid()}", null, ct))
                    {
                        last = e.Data;
                        if (!parse.GetValue(ingestJson)) context.Console.Error.WriteLine($"{Name(last)}: {Progress(last)}");
                        if (Finished(last)) break;
                    }
                }
                final.Add(last);
                if (!parse.GetValue(ingestJson)) context.Console.Line($"{Name(last)}  {Progress(last)}  {last.GetProperty("id").GetGuid()}");
            }
            if (parse.GetValue(ingestJson)) context.Console.WriteJson(final);
            return final.Any(d => d.GetProperty("status").GetString() == "failed") ? ExitCodes.Failed : ExitCodes.Ok;
        });
        root.Subcommands.Add(ingest);

        var searchCredentials = new Credentials();
        var query = new Argument<string[]>("query") { Description = "What to look for.", Arity = ArgumentArity.OneOrMore };
        var searchCollection = new Option<string?>("--collection", "-c") { Description = "Only this collection (name or id)." };
        var k = new Option<int>("--limit", "-k") { Description = "How many passages.", DefaultValueFactory = _ => 5 };
        var mode = new Option<string>("--mode") { Description = "hybrid, vector or keyword.", DefaultValueFactory = _ => "hybrid" };
        mode.AcceptOnlyFromAmong("hybrid", "vector", "keyword");
        var searchJson = UserCommands.JsonOption();
        var search = new Command("search", "Search the knowledge base: the best passages, with their documents.") { query, searchCollection, k, mode, searchJson };
        searchCredentials.AddTo(search);
        search.Act(context, async (parse, ct) =>
        {
            using var client = searchCredentials.Connect(parse);
            var q = string.Join(' ', parse.GetRequiredValue(query));
            var path = $"api/v1/search?q={Uri.EscapeDataString(q)}&k={parse.GetValue(k)}&mode={parse.GetValue(mode)}";
            if (parse.GetValue(searchCollection) is { } name)
                path += "&collection=" + (Guid.TryParse(name, out var id) ? id : await CollectionIdAsync(client, name, ct, create: false));
            var hits = await client.GetAsync(path, ct);
            if (parse.GetValue(searchJson)) context.Console.WriteJson(hits);
            else context.Console.Table(["SCORE", "DOCUMENT", "PAGE", "PASSAGE"], hits.EnumerateArray().Select(h => new[]
            {
                h.GetProperty("score").GetDouble().ToString("F3", CultureInfo.InvariantCulture),
                h.GetProperty("title").GetString(),
                h.TryGetProperty("page", out var page) && page.ValueKind == JsonValueKind.Number ? page.GetInt32().ToString(CultureInfo.InvariantCulture) : null,
                Snippet(h.GetProperty("text").GetString() ?? ""),
            }));
            return ExitCodes.Ok;
        });
        root.Subcommands.Add(search);
    }

    private static async Task<Guid> CollectionIdAsync(ServerClient client, string name, CancellationToken ct, bool create = true)
    {
        var collections = await client.GetAsync("api/v1/collections", ct);
        foreach (var c in collections.EnumerateArray())
            if (string.Equals(c.GetProperty("name").GetString(), name, StringComparison.OrdinalIgnoreCase)) return c.GetProperty("id").GetGuid();
        if (!create) throw new CliException(ExitCodes.NotFound, $"No collection '{name}'.");
        return (await client.PostAsync("api/v1/collections", new { name }, ct)).GetProperty("id").GetGuid();
    }

    private static bool Finished(JsonElement document) => document.GetProperty("status").GetString() is "indexed" or "failed";

    private static string Name(JsonElement document) => document.GetProperty("name").GetString() ?? "?";

    private static string Progress(JsonElement document)
    {
        var status = document.GetProperty("status").GetString();
        return status switch
        {
            "embedding" => $"embedding {document.GetProperty("chunksEmbedded").GetInt32()}/{document.GetProperty("chunkCount").GetInt32()}",
            "indexed" => $"indexed ({document.GetProperty("chunkCount").GetInt32()} chunks)",
            "failed" => "failed: " + (document.TryGetProperty("error", out var e) ? e.GetString() : "?"),
            _ => status ?? "?",
        };
    }

    private static string Snippet(string text)
    {
        var flat = string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
        return flat.Length <= 120 ? flat : flat[..117] + "...";
    }
}

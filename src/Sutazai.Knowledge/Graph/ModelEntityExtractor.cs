using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.AI;

namespace Sutazai.Knowledge.Graph;

/// <summary>A model answer that is not the JSON the extraction prompt asked for.</summary>
public sealed class GraphExtractionFormatException(string message) : FormatException(message);

/// <summary>
/// Asks a chat model for <c>{"entities":[{"name","type"}],"relations":[{"source","relation","target"}]}</c> and
/// parses the answer strictly: anything but that shape (prose, unknown fields of the wrong type, relations naming
/// entities that are not listed) throws <see cref="GraphExtractionFormatException"/>, so the caller keeps the
/// deterministic extraction alone.
/// </summary>
public sealed partial class ModelEntityExtractor(IChatClient chat)
{
    public const int MaxEntities = 50;
    public const int MaxRelations = 100;

    public const string Instructions =
        "Extract the named entities and the relations between them from the user's text. Answer with JSON only, no prose, " +
        "in exactly this shape: {\"entities\":[{\"name\":\"Ada Lovelace\",\"type\":\"person\"}],\"relations\":[{\"source\":\"Ada Lovelace\"," +
        "\"relation\":\"works_at\",\"target\":\"Analytical Engines Ltd\"}]}. Types are one lower-case word (person, organization, place, " +
        "product, event, concept). Relations are lower-case snake_case verbs; source and target must be names from entities.";

    [GeneratedRegex(@"^```(?:json)?\s*(?<body>.*?)\s*```$", RegexOptions.Singleline)]
    private static partial Regex Fenced();

    [GeneratedRegex(@"^[a-z][a-z_]{0,31}$")]
    private static partial Regex TypeName();

    public async Task<GraphExtraction> ExtractAsync(string text, CancellationToken cancellationToken = default)
    {
        var response = await chat.GetResponseAsync(
            [new ChatMessage(ChatRole.System, Instructions), new ChatMessage(ChatRole.User, text)],
            new ChatOptions { Temperature = 0, MaxOutputTokens = 1024, ResponseFormat = ChatResponseFormat.Json },
            cancellationToken).ConfigureAwait(false);
        return Parse(response.Text);
    }

    /// <summary>Parses a model's answer, accepting only the documented shape (a ```json fence around it is allowed).</summary>
    public static GraphExtraction Parse(string answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        var body = answer.Trim();
        if (Fenced().Match(body) is { Success: true } fenced) body = fenced.Groups["body"].Value;
        JsonElement root;
        try
        {
            using var document = JsonDocument.Parse(body);
            root = document.RootElement.Clone();
        }
        catch (JsonException ex)
        {
            throw new GraphExtractionFormatException($"The model's answer is not JSON: {ex.Message}");
        }

        if (root.ValueKind != JsonValueKind.Object) throw new GraphExtractionFormatException("The model's answer is not a JSON object.");
        var result = new GraphExtraction();
        var byName = new Dictionary<string, EntityKey>(StringComparer.Ordinal);
        foreach (var entity in Array(root, "entities", MaxEntities))
        {
            var name = String(entity, "name", EntityNames.MaxLength);
            var type = String(entity, "type", 32).ToLowerInvariant();
            if (!TypeName().IsMatch(type)) throw new GraphExtractionFormatException($"Entity type '{type}' is not one lower-case word.");
            var key = result.AddEntity(name, type);
            byName.TryAdd(EntityNames.Normalize(name, type), key);
        }

        foreach (var relation in Array(root, "relations", MaxRelations))
        {
            var source = String(relation, "source", EntityNames.MaxLength);
            var target = String(relation, "target", EntityNames.MaxLength);
            var name = EntityNames.Relation(String(relation, "relation", 64));
            if (name.Length == 0) throw new GraphExtractionFormatException("A relation has no name.");
            if (!byName.TryGetValue(EntityNames.Normalize(source, ""), out var from) || !byName.TryGetValue(EntityNames.Normalize(target, ""), out var to))
            {
                throw new GraphExtractionFormatException($"Relation '{source}' → '{target}' names an entity that is not listed.");
            }

            result.AddRelation(from, to, name);
        }

        return result;
    }

    private static IEnumerable<JsonElement> Array(JsonElement root, string property, int max)
    {
        if (!root.TryGetProperty(property, out var array) || array.ValueKind != JsonValueKind.Array)
        {
            throw new GraphExtractionFormatException($"'{property}' must be an array.");
        }

        if (array.GetArrayLength() > max) throw new GraphExtractionFormatException($"'{property}' has more than {max} items.");
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object) throw new GraphExtractionFormatException($"Every item of '{property}' must be an object.");
            yield return item;
        }
    }

    private static string String(JsonElement item, string property, int maxLength)
    {
        if (!item.TryGetProperty(property, out var value) || value.ValueKind != JsonValueKind.String)
        {
            throw new GraphExtractionFormatException($"'{property}' must be a string.");
        }

        var text = value.GetString()!.Trim();
        if (text.Length == 0 || text.Length > maxLength) throw new GraphExtractionFormatException($"'{property}' must have 1 to {maxLength} characters.");
        return text;
    }
}

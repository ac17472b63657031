using System.Text;
using System.Text.RegularExpressions;

namespace Sutazai.Knowledge.Graph;

/// <summary>Entity types the extractors produce.</summary>
public static class EntityTypes
{
    /// <summary>A capitalised multi-word name (a person, place or anything else the text capitalises).</summary>
    public const string Name = "name";

    /// <summary>A capitalised name ending in a company or institution word (Ltd, Inc, University, …).</summary>
    public const string Organization = "organization";

    public const string Email = "email";

    public const string Url = "url";

    public const string Handle = "handle";

    /// <summary>A lower-case noun phrase from an "X is a Y" statement.</summary>
    public const string Concept = "concept";
}

/// <summary>Relations with a fixed meaning; pattern and model relations are lower-case snake_case words.</summary>
public static class RelationNames
{
    /// <summary>Both entities are named in one sentence; the weight counts such sentences.</summary>
    public const string CoOccurs = "co_occurs";

    public const string IsA = "is_a";
}

/// <summary>An entity's identity within one owner: its normalised name and type.</summary>
public readonly record struct EntityKey(string NormalizedName, string Type);

public sealed record ExtractedEntity(EntityKey Key, string Name, int Count);

/// <summary>A relation from <paramref name="Source"/> to <paramref name="Target"/> (for co_occurs, in key order).</summary>
public sealed record ExtractedRelation(EntityKey Source, EntityKey Target, string Relation, double Weight);

/// <summary>What one text says: its entities (with mention counts) and relations (with weights).</summary>
public sealed class GraphExtraction
{
    private readonly Dictionary<EntityKey, ExtractedEntity> _entities = [];
    private readonly Dictionary<(EntityKey, EntityKey, string), double> _relations = [];

    public IReadOnlyCollection<ExtractedEntity> Entities => _entities.Values;

    public IEnumerable<ExtractedRelation> Relations => _relations.Select(r => new ExtractedRelation(r.Key.Item1, r.Key.Item2, r.Key.Item3, r.Value));

    /// <summary>Counts a mention of the entity (the first spelling seen is kept).</summary>
    public EntityKey AddEntity(string name, string type, int count = 1)
    {
        var key = new EntityKey(EntityNames.Normalize(name, type), type);
        _entities[key] = _entities.TryGetValue(key, out var known) ? known with { Count = known.Count + count } : new ExtractedEntity(key, EntityNames.Display(name), count);
        return key;
    }

    /// <summary>Adds weight to a relation; co-occurrence is undirected, so its ends are stored in key order.</summary>
    public void AddRelation(EntityKey source, EntityKey target, string relation, double weight = 1)
    {
        if (source == target) return;
        if (relation == RelationNames.CoOccurs && Compare(source, target) > 0) (source, target) = (target, source);
        _relations[(source, target, relation)] = _relations.GetValueOrDefault((source, target, relation)) + weight;
    }

    /// <summary>Adds another extraction of the same text; an entity both found is counted by the larger count.</summary>
    public void Merge(GraphExtraction other)
    {
        foreach (var entity in other._entities.Values)
        {
            _entities[entity.Key] = _entities.TryGetValue(entity.Key, out var known)
                ? known with { Count = Math.Max(known.Count, entity.Count) }
                : entity;
        }

        foreach (var ((source, target, relation), weight) in other._relations)
        {
            if (!_relations.ContainsKey((source, target, relation))) _relations[(source, target, relation)] = weight;
        }
    }

    private static int Compare(EntityKey a, EntityKey b)
    {
        var byName = string.CompareOrdinal(a.NormalizedName, b.NormalizedName);
        return byName != 0 ? byName : string.CompareOrdinal(a.Type, b.Type);
    }
}

/// <summary>Names as shown and as matched.</summary>
public static partial class EntityNames
{
    public const int MaxLength = 300;

    [GeneratedRegex(@"\s+")]
    private static partial Regex Spaces();

    [GeneratedRegex(@"[^a-z0-9]+")]
    private static partial Regex NotSnake();

    /// <summary>The identity of a name: lower case, single spaces, no surrounding punctuation; URLs without a trailing slash.</summary>
    public static string Normalize(string name, string type)
    {
        var text = Display(name).ToLowerInvariant();
        if (type == EntityTypes.Url) text = text.TrimEnd('/');
        return text;
    }

    /// <summary>Single-spaced, trimmed and cut to <see cref="MaxLength"/> characters.</summary>
    public static string Display(string name)
    {
        var text = Spaces().Replace(name, " ").Trim().Trim('"', '\'', '“', '”', '‘', '’', '(', ')', '[', ']', ',', ';', ':');
        return text.Length > MaxLength ? text[..MaxLength] : text;
    }

    /// <summary>A relation name as lower-case snake_case ("Chief engineer of" → "chief_engineer_of"), at most 64 characters.</summary>
    public static string Relation(string words)
    {
        var snake = NotSnake().Replace(words.ToLowerInvariant(), "_").Trim('_');
        return snake.Length > 64 ? snake[..64].TrimEnd('_') : snake;
    }

    /// <summary>Every run of 1–6 consecutive words of <paramref name="text"/>, normalised: the names a question may contain.</summary>
    public static HashSet<string> Phrases(string text)
    {
        var words = Spaces().Split(text.ToLowerInvariant()).Select(w => w.Trim('.', ',', ';', ':', '!', '?', '"', '\'', '(', ')', '[', ']', '“', '”', '’'))
            .Where(w => w.Length > 0).ToList();
        var phrases = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < words.Count; i++)
        {
            var phrase = new StringBuilder();
            for (var n = 0; n < 6 && i + n < words.Count; n++)
            {
                if (n > 0) phrase.Append(' ');
                phrase.Append(words[i + n]);
                phrases.Add(phrase.ToString());
                if (words[i + n].EndsWith("'s", StringComparison.Ordinal) || words[i + n].EndsWith("’s", StringComparison.Ordinal))
                {
                    phrases.Add(phrase.ToString()[..^2]);
                }
            }
        }

        return phrases;
    }
}

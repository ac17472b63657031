using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sutazai.TestSupport.Fuzz;

/// <summary>
/// Values for a fuzz case: mostly what the schema asks for (so requests get past validation and reach handlers),
/// mixed with values learned from earlier responses (real ids), and hostile ones (wrong types, boundary numbers,
/// huge, unusual or malicious strings).
/// </summary>
public sealed class FuzzValues(JsonElement document, FuzzOptions options)
{
    private static readonly JsonSerializerOptions Raw = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly ConcurrentDictionary<string, ConcurrentQueue<string>> _learned = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Strings that have broken parsers, paths, SQL, templates, HTML or Unicode handling somewhere.</summary>
    public static readonly string[] Hostile =
    [
        "", " ", "null", "undefined", "0", "-1", "1e309", "NaN", "true", "[]", "{}", "\0", "a\0b", "\u202etxt.exe", "\ufeff",
        "Z\u0351\u0360\u0361\u035c\u0362", "👩‍👩‍👧‍👦", "\ud83d\ude00", "日本語テキスト", "ǅ", "İ", "ß", "\r\n\r\n", "\t", "\\", "\"", "'", "`",
        "../../../../etc/passwd", "..\\..\\windows\\win.ini", "%2e%2e%2f%2e%2e%2f", "/dev/zero", "/proc/self/environ", "CON", "nul:",
        "'; DROP TABLE users; --", "\" OR 1=1 --", "%s%s%s%n", "{{7*7}}", "${jndi:ldap://x/a}", "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>", "javascript:alert(1)", "data:text/html,<b>x</b>", "file:///etc/passwd",
        "http://127.0.0.1:1/", "http://[::1]:1/", "http://169.254.169.254/latest/meta-data/", "http://localhost/%", "ftp://x",
        "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff", "not-a-guid", "9223372036854775808",
        "-9223372036854775809", "2147483648", "1.7976931348623157E+309", "0x1F", "1_000", "+1", "01", ".5", "5.", "1e-400",
        "admin", "root", "system", "tiny-deterministic:latest", "hf.co/x/y", "a/b/c", "a:b:c", "*", "?", "#", "&", "=", "%", "%%",
        "%00", "%ZZ", "a b", "a+b", "🦀", "\u0085", "\u2028\u2029", "\u00a0",
    ];

    /// <summary>Numbers at the edges: zero, negatives, int/long limits, fractions where integers go, huge doubles.</summary>
    private static readonly string[] Numbers =
        ["0", "-1", "1", "2147483647", "2147483648", "-2147483649", "9223372036854775807", "9223372036854775808", "1.5", "-0", "1e308", "1e309", "-1e309", "0.0000001", "99999999999999999999999"];

    public string[] ContentTypes { get; } =
    [
        "application/json; charset=utf-8", "application/json; charset=bogus", "text/plain", "", "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=zz", "application/json, text/plain", ";;;", "application/merge-patch+json", "*/*",
        "application/json; charset=\"utf-16\"", "application/json;", "APPLICATION/JSON", "application/xml", "application/json; boundary",
    ];

    /// <summary>Remembers string values of a response (by property name) so later cases can aim at real objects.</summary>
    public void Learn(JsonElement element, int depth = 0)
    {
        if (depth > 6) return;
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var p in element.EnumerateObject())
                {
                    if (p.Value.ValueKind is JsonValueKind.String or JsonValueKind.Number)
                    {
                        var value = p.Value.ToString();
                        if (value.Length is > 0 and <= 200 && (p.Name.EndsWith("id", StringComparison.OrdinalIgnoreCase) || p.Name is "name" or "label" or "model" or "username" or "tool"))
                            Remember(p.Name, value);
                    }
                    else Learn(p.Value, depth + 1);
                }
                break;
            case JsonValueKind.Array:
                var i = 0;
                foreach (var item in element.EnumerateArray())
                {
                    if (i++ > 20) break;
                    Learn(item, depth + 1);
                }
                break;
        }
    }

    private void Remember(string name, string value)
    {
        var queue = _learned.GetOrAdd(name, _ => new ConcurrentQueue<string>());
        if (queue.Contains(value)) return;
        queue.Enqueue(value);
        while (queue.Count > 64) queue.TryDequeue(out _);
        if (name != "id") Remember("id", value);
    }

    /// <summary>A value for a parameter or property named <paramref name="name"/>: known or learned most of the time.</summary>
    public string? Named(Random rng, string name, bool write)
    {
        var candidates = new List<string>();
        if (options.Known.TryGetValue(name, out var known)) candidates.AddRange(known);
        foreach (var key in new[] { name, name.EndsWith("Id", StringComparison.Ordinal) ? name : name + "Id", "id" })
            if (_learned.TryGetValue(key, out var queue)) candidates.AddRange(queue);
        if (write) candidates.RemoveAll(options.Protected.Contains);
        return candidates.Count == 0 ? null : candidates[rng.Next(candidates.Count)];
    }

    public string PathValue(Random rng, string name, JsonElement schema, bool write)
    {
        var roll = rng.Next(100);
        var value = roll < 60 && Named(rng, name, write) is { } named ? named
            : roll < 80 ? Scalar(rng, schema, name)
            : Hostile[rng.Next(Hostile.Length)];
        // Generated values may still land on a protected one (a learned model id); a write never aims at it.
        return write && options.Protected.Contains(value) ? Guid.NewGuid().ToString() : value;
    }

    public string QueryValue(Random rng, string name, JsonElement schema)
    {
        var roll = rng.Next(100);
        if (roll < 25 && Named(rng, name, write: false) is { } named) return named;
        if (roll < 70) return Scalar(rng, schema, name);
        if (roll < 80) return Numbers[rng.Next(Numbers.Length)];
        if (roll < 83) return new string('q', rng.Next(2_000, 9_000));
        return Hostile[rng.Next(Hostile.Length)];
    }

    private string Scalar(Random rng, JsonElement schema, string name) => Generate(rng, schema, name, 0) switch
    {
        null => "",
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        var node => node.ToJsonString(Raw),
    };

    /// <summary>A JSON value for <paramref name="schema"/> (refs, oneOf, nullable unions, enums, formats).</summary>
    public JsonNode? Generate(Random rng, JsonElement schema, string name, int depth)
    {
        schema = Resolve(schema);
        if (schema.ValueKind != JsonValueKind.Object) return Any(rng, depth);
        if (schema.TryGetProperty("oneOf", out var oneOf) || schema.TryGetProperty("anyOf", out oneOf))
        {
            var concrete = oneOf.EnumerateArray().Where(o => !(o.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() == "null")).ToList();
            if (concrete.Count == 0 || rng.Next(10) == 0) return null;
            return Generate(rng, concrete[rng.Next(concrete.Count)], name, depth);
        }
        if (schema.TryGetProperty("enum", out var values) && values.GetArrayLength() > 0)
            return JsonNode.Parse(values[rng.Next(values.GetArrayLength())].GetRawText());
        var type = "object";
        if (schema.TryGetProperty("type", out var t))
        {
            if (t.ValueKind == JsonValueKind.String) type = t.GetString()!;
            else
            {
                var types = t.EnumerateArray().Select(x => x.GetString()!).ToList();
                if (types.Contains("null") && rng.Next(8) == 0) return null;
                types.Remove("null");
                type = types.Count == 0 ? "null" : types.Contains("number") || types.Contains("integer") ? types.First(x => x is "number" or "integer") : types[rng.Next(types.Count)];
            }
        }
        else if (!schema.TryGetProperty("properties", out _)) return Any(rng, depth);
        var format = schema.TryGetProperty("format", out var f) ? f.GetString() : null;
        switch (type)
        {
            case "null": return null;
            case "boolean": return rng.Next(2) == 0;
            case "integer": return rng.Next(6) == 0 ? JsonNode.Parse(Numbers[rng.Next(Numbers.Length)]) : rng.Next(-2, 64);
            case "number": return rng.Next(6) == 0 ? JsonNode.Parse(Numbers[rng.Next(Numbers.Length)]) : Math.Round(rng.NextDouble() * 2, 2);
            case "string": return String(rng, name, format);
            case "array":
                var array = new JsonArray();
                var items = schema.TryGetProperty("items", out var it) ? it : default;
                var count = rng.Next(10) == 0 ? rng.Next(20, 200) : rng.Next(0, 4);
                for (var i = 0; i < count && depth < 8; i++) array.Add(Generate(rng, items, Singular(name), depth + 1));
                return array;
            default:
                var obj = new JsonObject();
                var required = schema.TryGetProperty("required", out var r) ? r.EnumerateArray().Select(x => x.GetString()!).ToHashSet() : [];
                if (schema.TryGetProperty("properties", out var props) && depth < 8)
                    foreach (var p in props.EnumerateObject())
                        if (rng.Next(100) < (required.Contains(p.Name) ? 92 : 75)) obj[p.Name] = Generate(rng, p.Value, p.Name, depth + 1);
                if (schema.TryGetProperty("additionalProperties", out var extra) && extra.ValueKind == JsonValueKind.Object)
                    for (var i = rng.Next(0, 3); i > 0; i--) obj[Word(rng)] = Generate(rng, extra, "value", depth + 1);
                return obj;
        }
    }

    private static string Singular(string name) => name.EndsWith("Ids", StringComparison.Ordinal) ? name[..^1] : name;

    private JsonNode? String(Random rng, string name, string? format)
    {
        var roll = rng.Next(100);
        if (roll < 45 && Named(rng, name, write: false) is { } named) return named;
        if (format == "uuid" && roll < 85) return Guid.NewGuid().ToString();
        if (format == "date-time" && roll < 85) return DateTimeOffset.UtcNow.AddDays(rng.Next(-400, 400)).ToString("O", CultureInfo.InvariantCulture);
        if (name.Contains("url", StringComparison.OrdinalIgnoreCase) && roll < 70)
            return new[] { "http://127.0.0.1:1/x", "https://example.invalid/", "http://localhost/", "not a url", "file:///etc/passwd" }[rng.Next(5)];
        if (roll < 80) return Sentence(rng);
        if (roll < 95) return Hostile[rng.Next(Hostile.Length)];
        return new string('x', rng.Next(10_000, 300_000));
    }

    /// <summary>Any JSON (for schema-less places like JsonElement options).</summary>
    public JsonNode? Any(Random rng, int depth) => rng.Next(depth > 3 ? 4 : 7) switch
    {
        0 => null,
        1 => rng.Next(2) == 0,
        2 => JsonNode.Parse(Numbers[rng.Next(Numbers.Length)]),
        3 => Hostile[rng.Next(Hostile.Length)],
        4 => new JsonArray(Enumerable.Range(0, rng.Next(3)).Select(_ => Any(rng, depth + 1)).ToArray()),
        _ => new JsonObject(Enumerable.Range(0, rng.Next(4)).Select(_ => KeyValuePair.Create(Word(rng), Any(rng, depth + 1))).DistinctBy(p => p.Key)),
    };

    private JsonElement Resolve(JsonElement schema)
    {
        for (var i = 0; i < 8 && schema.ValueKind == JsonValueKind.Object && schema.TryGetProperty("$ref", out var r); i++)
        {
            var target = document;
            foreach (var part in r.GetString()!.TrimStart('#', '/').Split('/')) target = target.GetProperty(part);
            schema = target;
        }
        return schema;
    }

    private static readonly string[] Words = ["hello", "model", "tell", "me", "about", "the", "weather", "list", "files", "run", "ls", "agent", "summarise", "doc", "x"];

    public static string Word(Random rng) => Words[rng.Next(Words.Length)] + (rng.Next(3) == 0 ? rng.Next(100).ToString(CultureInfo.InvariantCulture) : "");

    private static string Sentence(Random rng) => string.Join(' ', Enumerable.Range(0, rng.Next(1, 8)).Select(_ => Word(rng)));

    /// <summary>Serialises <paramref name="node"/> and, in about half the cases, breaks it: a wrong type somewhere, another
    /// root, a lone surrogate, invalid UTF-8, truncation, deep nesting, duplicate keys, an empty or oversized body.</summary>
    public (byte[] Bytes, string Mutation) Body(Random rng, JsonNode? node)
    {
        var text = node?.ToJsonString(Raw) ?? "null";
        if (rng.Next(100) < 50) return (Encoding.UTF8.GetBytes(text), "valid");
        switch (rng.Next(13))
        {
            case 0:
                if (node is JsonObject obj && obj.Count > 0)
                {
                    var key = obj.ElementAt(rng.Next(obj.Count)).Key;
                    obj[key] = Any(rng, 2);
                    return (Encoding.UTF8.GetBytes(obj.ToJsonString(Raw)), "wrong-type:" + key);
                }
                return (Encoding.UTF8.GetBytes("{}"), "empty-object");
            case 1: return (Encoding.UTF8.GetBytes(new[] { "[]", "\"x\"", "1", "null", "true", "[{}]" }[rng.Next(6)]), "other-root");
            case 2: return (Encoding.UTF8.GetBytes(InsertString(rng, text, new[] { "\\ud800", "\\udfff", "\\ud83d", "\\u0000" }[rng.Next(4)])), "escape");
            case 3:
                var bytes = Encoding.UTF8.GetBytes(text).ToList();
                bytes.InsertRange(rng.Next(bytes.Count + 1), new[] { new byte[] { 0xC3, 0x28 }, [0xFF], [0xED, 0xA0, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80], [0xC0, 0xAF] }[rng.Next(5)]);
                return (bytes.ToArray(), "invalid-utf8");
            case 4: return (Encoding.UTF8.GetBytes(text[..rng.Next(text.Length)]), "truncated");
            case 5:
                var depth = rng.Next(2) == 0 ? 65 : 20_000;
                return (Encoding.UTF8.GetBytes(new string('[', depth) + new string(']', depth)), "deep:" + depth);
            case 6: return (Encoding.UTF8.GetBytes(text.StartsWith('{') && text.Length > 2 ? text[..^1] + ",\"" + FirstKey(text) + "\":\"dup\"}" : text), "duplicate-key");
            case 7: return ([], "empty");
            case 8: return (Encoding.UTF8.GetBytes(InsertString(rng, text, new string('y', rng.Next(500_000, 1_100_000)))), "1MB-string");
            case 9: return (Encoding.UTF8.GetBytes("\ufeff" + text), "bom");
            case 10: return (Encoding.UTF8.GetBytes(text + new[] { " garbage", "}", ",", "\n{}" }[rng.Next(4)]), "trailing");
            case 11: return (Encoding.UTF8.GetBytes(text.Replace("\"", "'", StringComparison.Ordinal)), "single-quotes");
            default: return (Encoding.UTF8.GetBytes(InsertString(rng, text, Hostile[rng.Next(Hostile.Length)].Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal))), "hostile-string");
        }
    }

    private static string FirstKey(string json)
    {
        var start = json.IndexOf('"', StringComparison.Ordinal);
        var end = start < 0 ? -1 : json.IndexOf('"', start + 1);
        return end < 0 ? "k" : json[(start + 1)..end];
    }

    /// <summary>Puts <paramref name="content"/> inside the first string value of the JSON text (or wraps it as one).</summary>
    private static string InsertString(Random rng, string json, string content)
    {
        var quotes = new List<int>();
        for (var i = 0; i < json.Length; i++)
            if (json[i] == '"' && (i == 0 || json[i - 1] != '\\')) quotes.Add(i);
        // Every other quote opens a string; values follow a ':' (keys do not).
        var openings = quotes.Where((q, i) => i % 2 == 0 && q > 0 && json[..q].TrimEnd().EndsWith(':')).ToList();
        if (openings.Count == 0) return "{\"text\":\"" + content + "\"}";
        var at = openings[rng.Next(openings.Count)] + 1;
        return json[..at] + content + json[at..];
    }
}

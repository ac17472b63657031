using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Sutazai.Data.Entities;

namespace Sutazai.Server.Vectors;

/// <summary>One point of an upsert, checked: id, finite non-empty vector, metadata object and its filterable tags.</summary>
public sealed record PointInput(string Id, float[] Vector, string Metadata, IReadOnlyList<(string Key, string Value)> Tags, string Field);

/// <summary>
/// Reads and checks the raw vector API's JSON by hand, so each error names its field (<c>points[2].vector</c>).
/// Metadata filters are exact matches on top-level keys: a string, number, boolean or null value matches a point whose
/// metadata has that key with an equal value (numbers compare by value, so 1 equals 1.0). Objects and arrays are
/// stored and returned but cannot be filtered on.
/// </summary>
public static partial class VectorRequests
{
    public const int MaxDimensions = 4096;
    public const int MaxBatch = 1000;
    public const int MaxK = 1000;
    public const int DefaultK = 10;

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
    private static partial Regex CollectionName();

    public static bool IsValidCollectionName(string name) => CollectionName().IsMatch(name);

    public static List<PointInput> ReadPoints(JsonElement body, Dictionary<string, string[]> errors)
    {
        var points = new List<PointInput>();
        if (body.ValueKind != JsonValueKind.Object)
        {
            errors["body"] = ["Send a point {id, vector, metadata} or a batch {points: [...]}."];
            return points;
        }

        if (body.TryGetProperty("points", out var batch))
        {
            if (batch.ValueKind != JsonValueKind.Array || batch.GetArrayLength() is 0 or > MaxBatch)
            {
                errors["points"] = [$"points must be an array of 1 to {MaxBatch} points."];
                return points;
            }

            var i = 0;
            foreach (var element in batch.EnumerateArray())
            {
                if (ReadPoint(element, $"points[{i}].", errors) is { } point) points.Add(point);
                i++;
            }
        }
        else if (ReadPoint(body, "", errors) is { } point)
        {
            points.Add(point);
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var point in points)
            if (!seen.Add(point.Id)) errors[point.Field + "id"] = [$"The id '{point.Id}' appears more than once in this request."];
        return points;
    }

    private static PointInput? ReadPoint(JsonElement element, string prefix, Dictionary<string, string[]> errors)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            errors[prefix.Length > 0 ? prefix.TrimEnd('.') : "body"] = ["A point is an object {id, vector, metadata}."];
            return null;
        }

        var id = ReadId(element, prefix, errors);
        var vector = ReadVector(element, prefix + "vector", errors);
        string metadata = "{}";
        var tags = new List<(string, string)>();
        if (element.TryGetProperty("metadata", out var meta) && meta.ValueKind != JsonValueKind.Null)
        {
            if (meta.ValueKind != JsonValueKind.Object)
            {
                errors[prefix + "metadata"] = ["metadata must be a JSON object."];
            }
            else
            {
                metadata = meta.GetRawText();
                foreach (var property in meta.EnumerateObject())
                    if (property.Name.Length <= VectorLimits.TagKeyLength && Canonical(property.Value) is { Length: <= VectorLimits.TagValueLength } value)
                        tags.Add((property.Name, value));
            }
        }

        return id is null || vector is null ? null : new PointInput(id, vector, metadata, tags, prefix);
    }

    private static string? ReadId(JsonElement element, string prefix, Dictionary<string, string[]> errors)
    {
        string? id = null;
        if (element.TryGetProperty("id", out var raw))
        {
            if (raw.ValueKind == JsonValueKind.String) id = raw.GetString();
            else if (raw.ValueKind == JsonValueKind.Number && raw.TryGetInt64(out var number)) id = number.ToString(CultureInfo.InvariantCulture);
        }

        if (string.IsNullOrWhiteSpace(id) || id.Length > VectorLimits.PointIdLength)
        {
            errors[prefix + "id"] = [$"id must be a non-empty string of at most {VectorLimits.PointIdLength} characters, or an integer."];
            return null;
        }

        return id;
    }

    /// <summary>The vector at <c>vector</c>: 1 to <see cref="MaxDimensions"/> finite float32 numbers.</summary>
    public static float[]? ReadVector(JsonElement element, string field, Dictionary<string, string[]> errors)
    {
        if (!element.TryGetProperty("vector", out var raw) || raw.ValueKind != JsonValueKind.Array)
        {
            errors[field] = ["vector must be an array of numbers."];
            return null;
        }

        var length = raw.GetArrayLength();
        if (length is 0 or > MaxDimensions)
        {
            errors[field] = [$"vector must have 1 to {MaxDimensions} dimensions; it has {length}."];
            return null;
        }

        var vector = new float[length];
        var i = 0;
        foreach (var item in raw.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetDouble(out var value) || !float.IsFinite((float)value))
            {
                errors[field] = [$"vector[{i}] is not a finite 32-bit float (NaN, Infinity and values beyond ±3.4e38 are rejected)."];
                return null;
            }

            vector[i++] = (float)value;
        }

        return vector;
    }

    /// <summary>The exact-match filter: top-level metadata keys and the scalar values they must have.</summary>
    public static List<(string Key, string Value)> ReadFilter(JsonElement body, Dictionary<string, string[]> errors)
    {
        var filter = new List<(string, string)>();
        if (!body.TryGetProperty("filter", out var raw) || raw.ValueKind == JsonValueKind.Null) return filter;
        if (raw.ValueKind != JsonValueKind.Object)
        {
            errors["filter"] = ["filter must be an object of metadata keys and the values they must equal."];
            return filter;
        }

        foreach (var property in raw.EnumerateObject())
        {
            if (property.Value.ValueKind is JsonValueKind.Object or JsonValueKind.Array)
            {
                errors["filter"] = [$"filter.{property.Name}: only strings, numbers, booleans and null can be matched."];
            }
            else if (property.Name.Length > VectorLimits.TagKeyLength || Canonical(property.Value)!.Length > VectorLimits.TagValueLength)
            {
                errors["filter"] = [$"filter.{property.Name}: keys of at most {VectorLimits.TagKeyLength} characters and values of at most {VectorLimits.TagValueLength - 2} characters can be matched."];
            }
            else
            {
                filter.Add((property.Name, Canonical(property.Value)!));
            }
        }

        return filter;
    }

    public static int? ReadK(JsonElement body, Dictionary<string, string[]> errors)
    {
        if (!body.TryGetProperty("k", out var raw) || raw.ValueKind == JsonValueKind.Null) return DefaultK;
        if (raw.ValueKind == JsonValueKind.Number && raw.TryGetInt32(out var k) && k is >= 1 and <= MaxK) return k;
        errors["k"] = [$"k must be an integer from 1 to {MaxK}."];
        return null;
    }

    /// <summary>A scalar's comparable form ("s:text", "n:1.5", "b:true", "null"); null for objects and arrays.</summary>
    public static string? Canonical(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => "s:" + value.GetString(),
        JsonValueKind.Number => "n:" + value.GetDouble().ToString("R", CultureInfo.InvariantCulture),
        JsonValueKind.True => "b:true",
        JsonValueKind.False => "b:false",
        JsonValueKind.Null => "null",
        _ => null,
    };
}

using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Sutazai.Knowledge.Extraction;

/// <summary>
/// JSON as one "path: value" line per leaf, in document order. Paths use dots for simple property names
/// (letters, digits, '_', '-'), ["name"] for others and [i] for array items; the root has the empty path, so a root
/// scalar is just its value. Strings are unquoted, numbers keep their source text, empty objects and arrays appear as
/// {} and []. Comments and trailing commas are tolerated.
/// </summary>
internal static partial class JsonFlattener
{
    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_-]*$")]
    private static partial Regex SimpleName();

    public static string Flatten(string text, CharacterBudget budget)
    {
        if (text.Length == 0) return "";
        try
        {
            using var document = JsonDocument.Parse(text, new JsonDocumentOptions
            {
                AllowTrailingCommas = true,
                CommentHandling = JsonCommentHandling.Skip,
                MaxDepth = 128,
            });
            var output = new StringBuilder();
            Write(document.RootElement, "", output, budget);
            return output.ToString();
        }
        catch (JsonException ex)
        {
            throw new DocumentExtractionException($"The file is not valid JSON: {ex.Message}", ex);
        }
    }

    private static void Write(JsonElement element, string path, StringBuilder output, CharacterBudget budget)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object when element.EnumerateObject().Any():
                foreach (var property in element.EnumerateObject())
                {
                    var name = property.Name;
                    var child = SimpleName().IsMatch(name)
                        ? (path.Length == 0 ? name : path + "." + name)
                        : path + "[" + JsonSerializer.Serialize(name) + "]";
                    Write(property.Value, child, output, budget);
                }

                break;
            case JsonValueKind.Array when element.GetArrayLength() > 0:
                var index = 0;
                foreach (var item in element.EnumerateArray()) Write(item, $"{path}[{index++}]", output, budget);
                break;
            default:
                if (output.Length > 0) output.Append('\n');
                if (path.Length > 0) output.Append(path).Append(": ");
                output.Append(element.ValueKind switch
                {
                    JsonValueKind.Object => "{}",
                    JsonValueKind.Array => "[]",
                    JsonValueKind.String => element.GetString(),
                    _ => element.GetRawText(),
                });
                budget.Check(output.Length);
                break;
        }
    }
}

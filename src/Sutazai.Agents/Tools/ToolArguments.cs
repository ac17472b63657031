using System.Text.Json;
using Microsoft.Extensions.AI;

namespace Sutazai.Agents.Tools;

/// <summary>Reads arguments as a model sent them (JSON elements) or as code passed them (CLR values).</summary>
internal static class ToolArguments
{
    public static string? GetString(AIFunctionArguments arguments, string name)
    {
        if (!arguments.TryGetValue(name, out var value) || value is null) return null;
        return value switch
        {
            string s => s,
            JsonElement { ValueKind: JsonValueKind.String } e => e.GetString(),
            JsonElement { ValueKind: JsonValueKind.Null or JsonValueKind.Undefined } => null,
            JsonElement e => e.GetRawText(),
            _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture),
        };
    }
}

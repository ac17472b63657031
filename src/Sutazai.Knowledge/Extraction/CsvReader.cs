using System.Text;

namespace Sutazai.Knowledge.Extraction;

/// <summary>
/// CSV (RFC 4180 quoting; the delimiter is whichever of ',', ';' or tab occurs most in the header line). The output
/// starts with a "Columns: a, b, c" paragraph; then each data row is one paragraph of "column: value" lines, in column
/// order, empty values included. Fields beyond the header are named "column N" (1-based).
/// </summary>
internal static class CsvReader
{
    public static string Flatten(string text, CharacterBudget budget)
    {
        if (text.Length == 0) return "";
        var delimiter = DetectDelimiter(text);
        var rows = Parse(text, delimiter);
        if (rows.Count == 0) return "";

        var header = rows[0];
        var output = new StringBuilder();
        output.Append("Columns: ").AppendJoin(", ", header);
        for (var r = 1; r < rows.Count; r++)
        {
            var row = rows[r];
            if (row.Count == 1 && row[0].Length == 0) continue;
            output.Append("\n\n");
            for (var c = 0; c < row.Count; c++)
            {
                if (c > 0) output.Append('\n');
                var name = c < header.Count && header[c].Length > 0 ? header[c] : $"column {c + 1}";
                output.Append(name).Append(": ").Append(row[c]);
            }

            budget.Check(output.Length);
        }

        return output.ToString();
    }

    private static char DetectDelimiter(string text)
    {
        var end = text.IndexOf('\n');
        var header = end < 0 ? text : text[..end];
        var best = ',';
        var bestCount = 0;
        foreach (var candidate in (ReadOnlySpan<char>)[',', ';', '\t'])
        {
            var count = header.Count(c => c == candidate);
            if (count > bestCount)
            {
                best = candidate;
                bestCount = count;
            }
        }

        return best;
    }

    private static List<List<string>> Parse(string text, char delimiter)
    {
        var rows = new List<List<string>>();
        var row = new List<string>();
        var field = new StringBuilder();
        var inQuotes = false;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (inQuotes)
            {
                if (c != '"') field.Append(c);
                else if (i + 1 < text.Length && text[i + 1] == '"')
                {
                    field.Append('"');
                    i++;
                }
                else inQuotes = false;
            }
            else if (c == '"' && field.Length == 0) inQuotes = true;
            else if (c == delimiter)
            {
                row.Add(field.ToString());
                field.Clear();
            }
            else if (c == '\n')
            {
                row.Add(field.ToString());
                field.Clear();
                rows.Add(row);
                row = [];
            }
            else field.Append(c);
        }

        row.Add(field.ToString());
        rows.Add(row);
        return rows;
    }
}

using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Sutazai.Server.Cli;

/// <summary>
/// Where commands write: Spectre.Console tables and prompts on a terminal, plain tab-free lines when the output is
/// redirected (so <c>grep</c> and <c>awk</c> work), and JSON for <c>--json</c>. Errors always go to standard error.
/// </summary>
public sealed class CliConsole
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private readonly Lazy<IAnsiConsole> _ansi;

    public CliConsole(TextWriter? output = null, TextWriter? error = null, bool? interactive = null)
    {
        Out = output ?? Console.Out;
        Error = error ?? Console.Error;
        Interactive = interactive ?? !Console.IsOutputRedirected;
        _ansi = new Lazy<IAnsiConsole>(() => AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Out) }));
    }

    public TextWriter Out { get; }

    public TextWriter Error { get; }

    /// <summary>The output is a terminal: tables, colours, progress bars and prompts are welcome.</summary>
    public bool Interactive { get; }

    /// <summary>Standard input is a terminal (prompts can be answered), not a pipe or a file.</summary>
    public static bool InputIsTerminal => !Console.IsInputRedirected;

    public IAnsiConsole Ansi => _ansi.Value;

    public void WriteJson<T>(T value) => Out.WriteLine(JsonSerializer.Serialize(value, Json));

    public void Line(string text = "") => Out.WriteLine(text);

    public void Warn(string text) => Error.WriteLine("warning: " + text);

    public void Fail(string text) => Error.WriteLine("error: " + text);

    /// <summary>A table on a terminal; columns padded to their widest cell, one row a line, when redirected.</summary>
    public void Table(IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string?>> rows)
    {
        var cells = rows.Select(r => r.Select(c => string.IsNullOrEmpty(c) ? "-" : c).ToArray()).ToList();
        if (Interactive)
        {
            var table = new Table().Border(TableBorder.Rounded);
            foreach (var header in headers) table.AddColumn(new TableColumn(new Text(header, new Style(decoration: Decoration.Bold))));
            foreach (var row in cells) table.AddRow(row.Select(c => (IRenderable)new Text(c)).ToArray());
            Ansi.Write(table);
            return;
        }
        var widths = headers.Select((h, i) => Math.Max(h.Length, cells.Count == 0 ? 0 : cells.Max(r => r[i].Length))).ToArray();
        Out.WriteLine(Row(headers, widths));
        foreach (var row in cells) Out.WriteLine(Row(row, widths));
    }

    private static string Row(IReadOnlyList<string> cells, int[] widths)
    {
        var line = new StringBuilder();
        for (var i = 0; i < cells.Count; i++)
        {
            if (i > 0) line.Append("  ");
            line.Append(i == cells.Count - 1 ? cells[i] : cells[i].PadRight(widths[i]));
        }
        return line.ToString().TrimEnd();
    }

    /// <summary>
    /// A secret from the user: typed without echo on a terminal (twice when <paramref name="confirm"/>), or the first
    /// line of standard input when it is a pipe (<c>printf '%s\n' "$PW" | sutazai users set-password …</c>).
    /// </summary>
    public string ReadSecret(string prompt, bool confirm)
    {
        if (!InputIsTerminal)
            return Console.In.ReadLine() ?? throw new CliException(ExitCodes.Usage, "Expected the password on standard input, or give --password.");
        var ansi = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        var first = ansi.Prompt(new TextPrompt<string>(Markup.Escape(prompt) + ":").Secret());
        if (!confirm) return first;
        var second = ansi.Prompt(new TextPrompt<string>("Again:").Secret());
        return first == second ? first : throw new CliException(ExitCodes.Usage, "The two passwords differ.");
    }

    public static string Size(long? bytes) => bytes switch
    {
        null => "-",
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):F2} GB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):F1} MB"),
        >= 1L << 10 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:F1} KB"),
        _ => $"{bytes} B",
    };

    public static string Time(DateTime? utc) => utc is { } t ? t.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture) : "-";
}

using System.Text;
using System.Text.RegularExpressions;

namespace Sutazai.Agents.Tools;

/// <summary>
/// Rates a shell command for the approval card. It reads the command the way sh splits it (quotes, operators,
/// redirections, command substitutions) and rates every simple command in it; the command's risk is the highest.
/// Low: only read-only commands (ls, cat, grep, find without -delete/-exec, …) and no output redirection.
/// High: destructive or privileged (rm, sudo, mkfs, dd, chmod -R, kill, shutdown, writing to a device, curl | sh).
/// Medium: everything else, including anything unknown. It is a heuristic for the human who approves, not a filter.
/// </summary>
public static partial class ShellRisk
{
    private static readonly HashSet<string> ReadOnly = new(StringComparer.Ordinal)
    {
        "ls", "cat", "du", "find", "head", "tail", "wc", "sort", "echo", "pwd", "stat", "grep", "egrep", "fgrep",
        "printf", "true", "false", "df", "file", "tree", "basename", "dirname", "realpath", "readlink", "uniq", "cut",
        "tr", "diff", "cmp", "md5sum", "sha1sum", "sha256sum", "sha512sum", "whoami", "id", "date", "uname", "which",
        "test", "[", "nl", "column", "rev", "seq",
    };

    private static readonly HashSet<string> Destructive = new(StringComparer.Ordinal)
    {
        "rm", "sudo", "su", "doas", "pkexec", "dd", "shred", "wipefs", "fdisk", "sfdisk", "parted", "mkswap", "mke2fs",
        "shutdown", "reboot", "halt", "poweroff", "init", "telinit", "kill", "killall", "pkill", "chroot", "mount", "umount",
        "insmod", "rmmod", "modprobe", "iptables", "nft", "crontab", "useradd", "userdel", "usermod", "passwd", "chpasswd", "visudo",
    };

    private static readonly HashSet<string> Recursive = new(StringComparer.Ordinal) { "chmod", "chown", "chgrp" };

    private static readonly HashSet<string> Shells = new(StringComparer.Ordinal)
    {
        "sh", "bash", "dash", "zsh", "ksh", "ash", "fish", "python", "python3", "perl", "ruby", "node", "php",
    };

    private static readonly HashSet<string> Downloaders = new(StringComparer.Ordinal) { "curl", "wget", "fetch" };

    /// <summary>Commands that run another command given as their arguments.</summary>
    private static readonly HashSet<string> Wrappers = new(StringComparer.Ordinal)
    {
        "env", "nohup", "nice", "time", "command", "exec", "timeout", "xargs", "stdbuf", "ionice", "setsid", "busybox", "watch",
    };

    private static readonly HashSet<string> HarmlessTargets = new(StringComparer.Ordinal)
    {
        "/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty",
    };

    public static ToolRisk Assess(string? command) => Assess(command ?? "", depth: 0);

    private static ToolRisk Assess(string command, int depth)
    {
        if (depth > 8) return ToolRisk.High;
        if (ForkBomb().IsMatch(command)) return ToolRisk.High;
        var parsed = Parse(command, depth);
        var risk = parsed.SubstitutionRisk;
        foreach (var pipeline in parsed.Pipelines)
        {
            var downloaded = false;
            foreach (var simple in pipeline)
            {
                var words = simple.Words.SkipWhile(IsAssignment).ToList();
                var name = words.Count > 0 ? Path.GetFileName(words[0]) : "";
                if (downloaded && Shells.Contains(name)) return ToolRisk.High;
                downloaded |= Downloaders.Contains(name);
                risk = Max(risk, Rate(words, depth));
                foreach (var (op, target) in simple.Redirects)
                {
                    if (op.StartsWith('<') || op.EndsWith('&') && (target == "-" || target.All(char.IsDigit))) continue;
                    if (HarmlessTargets.Contains(target) || target.StartsWith("/dev/fd/", StringComparison.Ordinal)) continue;
                    risk = Max(risk, target.StartsWith("/dev/", StringComparison.Ordinal) ? ToolRisk.High : ToolRisk.Medium);
                }
            }
        }
        return risk;
    }

    /// <summary>Rates one simple command (its words after any NAME=value assignments).</summary>
    private static ToolRisk Rate(List<string> words, int depth)
    {
        if (words.Count == 0) return ToolRisk.Low;
        var name = Path.GetFileName(words[0]);
        var args = words.Skip(1).ToList();
        if (Destructive.Contains(name) || name.StartsWith("mkfs", StringComparison.Ordinal)) return ToolRisk.High;
        if (Recursive.Contains(name))
            return args.Any(a => a == "--recursive" || a.StartsWith('-') && !a.StartsWith("--", StringComparison.Ordinal) && a.Contains('R', StringComparison.Ordinal))
                ? ToolRisk.High : ToolRisk.Medium;
        if (Wrappers.Contains(name))
        {
            var rest = args.SkipWhile(a => a.StartsWith('-') || IsAssignment(a)).ToList();
            if (name == "timeout" && rest.Count > 0) rest = rest.Skip(1).ToList();
            return rest.Count == 0 ? ToolRisk.Low : Max(name is "exec" or "setsid" ? ToolRisk.Medium : ToolRisk.Low, Rate(rest, depth));
        }
        if (Shells.Contains(name))
        {
            var script = args.SkipWhile(a => a != "-c").Skip(1).FirstOrDefault();
            return script is null ? ToolRisk.Medium : Max(ToolRisk.Medium, Assess(script, depth + 1));
        }
        if (name == "eval") return Max(ToolRisk.Medium, Assess(string.Join(' ', args), depth + 1));
        if (name == "find") return RateFind(args, depth);
        if (name == "sort" && args.Any(a => a == "-o" || a.StartsWith("--output", StringComparison.Ordinal) || a.StartsWith("-o", StringComparison.Ordinal))) return ToolRisk.Medium;
        return ReadOnly.Contains(name) ? ToolRisk.Low : ToolRisk.Medium;
    }

    private static ToolRisk RateFind(List<string> args, int depth)
    {
        var risk = ToolRisk.Low;
        for (var i = 0; i < args.Count; i++)
        {
            switch (args[i])
            {
                case "-delete":
                    return ToolRisk.High;
                case "-exec" or "-execdir" or "-ok" or "-okdir":
                    var inner = args.Skip(i + 1).TakeWhile(a => a is not (";" or "+")).ToList();
                    risk = Max(risk, Max(ToolRisk.Medium, Rate(inner, depth)));
                    i += inner.Count;
                    break;
                case "-fprint" or "-fprint0" or "-fprintf" or "-fls":
                    risk = Max(risk, ToolRisk.Medium);
                    break;
            }
        }
        return risk;
    }

    private static bool IsAssignment(string word) => AssignmentPattern().IsMatch(word);

    private static ToolRisk Max(ToolRisk a, ToolRisk b) => a > b ? a : b;

    private sealed record SimpleCommand(List<string> Words, List<(string Op, string Target)> Redirects);

    private sealed record ParsedCommand(List<List<SimpleCommand>> Pipelines, ToolRisk SubstitutionRisk);

    /// <summary>Splits a command line like sh does, far enough to rate it: words, operators, redirections, substitutions.</summary>
    private static ParsedCommand Parse(string text, int depth)
    {
        var pipelines = new List<List<SimpleCommand>>();
        var pipeline = new List<SimpleCommand>();
        var words = new List<string>();
        var redirects = new List<(string, string)>();
        var word = new StringBuilder();
        var inWord = false;
        string? pendingRedirect = null;
        var substitutionRisk = ToolRisk.Low;

        void EndWord()
        {
            if (!inWord) return;
            var value = word.ToString();
            if (pendingRedirect is not null)
            {
                redirects.Add((pendingRedirect, value));
                pendingRedirect = null;
            }
            else
            {
                words.Add(value);
            }
            word.Clear();
            inWord = false;
        }

        void EndCommand()
        {
            EndWord();
            if (words.Count > 0 || redirects.Count > 0) pipeline.Add(new SimpleCommand([.. words], [.. redirects]));
            words.Clear();
            redirects.Clear();
        }

        void EndPipeline()
        {
            EndCommand();
            if (pipeline.Count > 0) pipelines.Add([.. pipeline]);
            pipeline.Clear();
        }

        // Reads $( … ) or ` … ` starting at i, rates what it runs and returns the index of its last character.
        int Substitution(int i, bool backtick)
        {
            var start = i + (backtick ? 1 : 2);
            var end = start;
            var nesting = 1;
            while (end < text.Length)
            {
                var c = text[end];
                if (backtick && c == '`') break;
                if (!backtick && c == '(') nesting++;
                if (!backtick && c == ')' && --nesting == 0) break;
                end++;
            }
            substitutionRisk = Max(substitutionRisk, Assess(text[start..Math.Min(end, text.Length)], depth + 1));
            word.Append("$SUB");
            inWord = true;
            return end;
        }

        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            switch (c)
            {
                case '\\' when i + 1 < text.Length:
                    word.Append(text[++i]);
                    inWord = true;
                    break;
                case '\'':
                    var close = text.IndexOf('\'', i + 1);
                    close = close < 0 ? text.Length : close;
                    word.Append(text, i + 1, close - i - 1);
                    inWord = true;
                    i = close;
                    break;
                case '"':
                    inWord = true;
                    for (i++; i < text.Length && text[i] != '"'; i++)
                    {
                        if (text[i] == '\\' && i + 1 < text.Length) word.Append(text[++i]);
                        else if (text[i] == '$' && i + 1 < text.Length && text[i + 1] == '(') i = Substitution(i, backtick: false);
                        else if (text[i] == '`') i = Substitution(i, backtick: true);
                        else word.Append(text[i]);
                    }
                    break;
                case '$' when i + 1 < text.Length && text[i + 1] == '(':
                    i = Substitution(i, backtick: false);
                    break;
                case '`':
                    i = Substitution(i, backtick: true);
                    break;
                case '#' when !inWord:
                    while (i < text.Length && text[i] != '\n') i++;
                    EndPipeline();
                    break;
                case ' ' or '\t':
                    EndWord();
                    break;
                case '\n' or ';' or '(' or ')' or '{' or '}' when c is not ('{' or '}') || !inWord:
                    EndPipeline();
                    break;
                case '|':
                    if (i + 1 < text.Length && text[i + 1] == '|')
                    {
                        i++;
                        EndPipeline();
                    }
                    else
                    {
                        EndCommand();
                    }
                    break;
                case '&':
                    if (i + 1 < text.Length && text[i + 1] == '>')
                    {
                        EndWord();
                        var op = i + 2 < text.Length && text[i + 2] == '>' ? "&>>" : "&>";
                        i += op.Length - 1;
                        pendingRedirect = op;
                    }
                    else
                    {
                        if (i + 1 < text.Length && text[i + 1] == '&') i++;
                        EndPipeline();
                    }
                    break;
                case '>' or '<':
                {
                    // A number right before the operator is the file descriptor, not a word.
                    if (inWord && word.ToString().All(char.IsDigit))
                    {
                        word.Clear();
                        inWord = false;
                    }
                    EndWord();
                    var op = new StringBuilder().Append(c);
                    while (i + 1 < text.Length && text[i + 1] is '>' or '<' or '&' or '|')
                        op.Append(text[++i]);
                    pendingRedirect = op.ToString();
                    break;
                }
                default:
                    word.Append(c);
                    inWord = true;
                    break;
            }
        }
        EndPipeline();
        return new ParsedCommand(pipelines, substitutionRisk);
    }

    [GeneratedRegex(@"^[A-Za-z_][A-Za-z0-9_]*=")]
    private static partial Regex AssignmentPattern();

    [GeneratedRegex(@"(\w+|:)\s*\(\)\s*\{[^}]*\1\s*\|\s*\1\s*&")]
    private static partial Regex ForkBomb();
}

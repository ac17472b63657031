using System.Text.RegularExpressions;

namespace Sutazai.Knowledge.Graph;

/// <summary>
/// The deterministic extractor: no model, same text → same graph.
/// <list type="bullet">
/// <item>Entities: e-mail addresses, http(s) URLs, @handles, and capitalised names of two to six words ("Ada
/// Lovelace", "Analytical Engines Ltd"; "of" may join a one-word head to the rest: "Bank of England"), without a
/// leading sentence word such as "The" or "When". Names starting or ending with a company or institution word are organisations.</item>
/// <item>Relations: <c>co_occurs</c> between every two entities of one sentence (weight = sentences);
/// "X is a Y" → X <c>is_a</c> concept Y; "X, (the) role of Y" / "X is the role of/at Y" → X <c>role_of</c> Y;
/// "X works at/for Y" → <c>works_at</c>/<c>works_for</c>; "X founded/leads/… Y" → that verb.</item>
/// </list>
/// </summary>
public static partial class RuleBasedEntityExtractor
{
    private static readonly HashSet<string> LeadingWords = new(StringComparer.Ordinal)
    {
        "The", "A", "An", "This", "That", "These", "Those", "In", "On", "At", "For", "From", "To", "By", "With", "Without",
        "When", "Where", "While", "If", "And", "But", "Or", "So", "Yes", "No", "Our", "Your", "My", "We", "I", "It", "He",
        "She", "They", "Dear", "Hello", "Hi", "Thanks", "Then", "After", "Before", "Since", "During", "Every", "Each", "All",
        "Some", "Many", "Most", "Both", "Only", "Also", "Today", "Yesterday", "Tomorrow", "Why", "What", "Who", "How", "Which",
        "Please", "See", "Ask", "Meet", "Contact", "Email", "Call", "Visit", "About", "As", "Is", "Was", "Are", "Were", "Did", "Does", "Do",
    };

    private static readonly HashSet<string> OrganizationWords = new(StringComparer.Ordinal)
    {
        "Inc", "Inc.", "Ltd", "Ltd.", "LLC", "Corp", "Corp.", "Corporation", "Company", "Co", "Co.", "GmbH", "AG", "SA", "PLC",
        "University", "Institute", "Foundation", "Bank", "Group", "Agency", "Association", "Society", "College", "Laboratory",
        "Labs", "Ministry", "Department", "Council", "Committee", "Museum", "Hospital", "School", "Systems", "Technologies",
    };

    private static readonly Dictionary<string, string> Verbs = new(StringComparer.Ordinal)
    {
        ["founded"] = "founded", ["co-founded"] = "founded", ["leads"] = "leads", ["led"] = "leads", ["manages"] = "manages",
        ["managed"] = "manages", ["owns"] = "owns", ["owned"] = "owns", ["acquired"] = "acquired", ["joined"] = "joined",
        ["married"] = "married", ["met"] = "met", ["employs"] = "employs", ["employed"] = "employs", ["funds"] = "funds",
        ["funded"] = "funds", ["advises"] = "advises", ["advised"] = "advises", ["mentors"] = "mentors", ["mentored"] = "mentors",
    };

    [GeneratedRegex(@"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")]
    private static partial Regex Emails();

    [GeneratedRegex(@"\bhttps?://[^\s<>""'`]+", RegexOptions.IgnoreCase)]
    private static partial Regex Urls();

    [GeneratedRegex(@"(?<![\w@.])@[A-Za-z_][A-Za-z0-9_]{1,30}\b(?!@)")]
    private static partial Regex Handles();

    [GeneratedRegex(@"[\p{L}\p{M}\p{N}][\p{L}\p{M}\p{N}'’&.-]*")]
    private static partial Regex Words();

    [GeneratedRegex(@"(?<=[.!?])[""'”’)]*\s+(?=[\p{Lu}\p{N}""'“(\[@])|\n\s*\n|\r?\n(?=\s*(?:[-*•#>]|\d+[.)]\s))|\r?\n")]
    private static partial Regex SentenceBreaks();

    [GeneratedRegex(@"^\s+(?:is|was)\s+(?:a|an)\s+(?<y>[a-z][a-z-]*(?:\s+[a-z][a-z-]*){0,2})\s*(?:[.;:!?,]|$)")]
    private static partial Regex IsA();

    [GeneratedRegex(@"^\s*(?:,\s*|\s+(?:is|was|as)\s+)(?:(?:the|a|an|our|their|its)\s+)?(?<role>[A-Za-z][A-Za-z-]*(?:\s+[A-Za-z][A-Za-z-]*){0,2}?)\s+(?<prep>of|at)\s+$")]
    private static partial Regex RoleOf();

    [GeneratedRegex(@"^\s+(?:works|worked|working)\s+(?<prep>at|for)\s+$")]
    private static partial Regex WorksAt();

    [GeneratedRegex(@"^\s+(?<verb>[a-z-]+)\s+(?:the\s+)?$")]
    private static partial Regex Verb();

    public static GraphExtraction Extract(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var result = new GraphExtraction();
        foreach (var sentence in SentenceBreaks().Split(text))
        {
            if (string.IsNullOrWhiteSpace(sentence)) continue;
            var found = FindEntities(sentence);
            foreach (var entity in found) result.AddEntity(entity.Name, entity.Type);
            var keys = found.Select(f => new EntityKey(EntityNames.Normalize(f.Name, f.Type), f.Type)).ToList();
            foreach (var (a, b) in keys.Distinct().SelectMany((a, i) => keys.Distinct().Skip(i + 1).Select(b => (a, b))))
            {
                result.AddRelation(a, b, RelationNames.CoOccurs);
            }

            for (var i = 0; i < found.Count; i++)
            {
                var after = sentence[found[i].End..];
                if (IsA().Match(after) is { Success: true } isA && (i + 1 == found.Count || found[i + 1].Start >= found[i].End + isA.Length))
                {
                    var concept = result.AddEntity(isA.Groups["y"].Value, EntityTypes.Concept);
                    result.AddRelation(keys[i], concept, RelationNames.IsA);
                }

                if (i + 1 >= found.Count) continue;
                var between = sentence[found[i].End..found[i + 1].Start];
                var relation = RoleOf().Match(between) is { Success: true } role ? EntityNames.Relation(role.Groups["role"].Value + " " + role.Groups["prep"].Value)
                    : WorksAt().Match(between) is { Success: true } works ? "works_" + works.Groups["prep"].Value
                    : Verb().Match(between) is { Success: true } verb && Verbs.TryGetValue(verb.Groups["verb"].Value, out var v) ? v
                    : null;
                if (relation is { Length: > 0 }) result.AddRelation(keys[i], keys[i + 1], relation);
            }
        }

        return result;
    }

    private sealed record Found(string Name, string Type, int Start, int End);

    private static List<Found> FindEntities(string sentence)
    {
        var found = new List<Found>();
        var taken = new bool[sentence.Length];
        void Take(int start, int length, string name, string type)
        {
            found.Add(new Found(name, type, start, start + length));
            Array.Fill(taken, true, start, length);
        }

        foreach (Match url in Urls().Matches(sentence))
        {
            var value = url.Value.TrimEnd('.', ',', ';', ':', '!', '?', ')', ']');
            Take(url.Index, value.Length, value, EntityTypes.Url);
        }

        foreach (Match email in Emails().Matches(sentence))
        {
            if (!taken[email.Index]) Take(email.Index, email.Length, email.Value, EntityTypes.Email);
        }

        foreach (Match handle in Handles().Matches(sentence))
        {
            if (!taken[handle.Index]) Take(handle.Index, handle.Length, handle.Value, EntityTypes.Handle);
        }

        var words = Words().Matches(sentence).Where(w => !taken[w.Index]).ToList();
        var i = 0;
        while (i < words.Count)
        {
            if (!IsCapitalised(words[i].Value) || LeadingWords.Contains(words[i].Value))
            {
                i++;
                continue;
            }

            // A run of capitalised words separated by single spaces; "of" may join a one-word head ("Bank of England").
            var run = new List<Match> { words[i] };
            var j = i + 1;
            while (j < words.Count && run.Count < 6 && Adjacent(sentence, run[^1], words[j]))
            {
                if (IsCapitalised(words[j].Value) && !EndsClause(run[^1].Value))
                {
                    run.Add(words[j]);
                    j++;
                }
                else if (words[j].Value == "of" && run.Count == 1 && j + 1 < words.Count && IsCapitalised(words[j + 1].Value) && Adjacent(sentence, words[j], words[j + 1]))
                {
                    run.Add(words[j]);
                    run.Add(words[j + 1]);
                    j += 2;
                }
                else
                {
                    break;
                }
            }

            while (run.Count > 0 && LeadingWords.Contains(run[0].Value)) run.RemoveAt(0);
            if (run.Count >= 2 && run[^1].Value != "of")
            {
                var start = run[0].Index;
                var end = run[^1].Index + run[^1].Length;
                var name = sentence[start..end];
                if (name.EndsWith("'s", StringComparison.Ordinal) || name.EndsWith("’s", StringComparison.Ordinal))
                {
                    name = name[..^2];
                    end -= 2;
                }

                name = name.TrimEnd('.', '-', '\'', '’');
                var parts = name.Split(' ');
                var organization = new[] { parts[0], parts[^1] }.Any(w => OrganizationWords.Contains(w) || OrganizationWords.Contains(w + "."));
                Take(start, name.Length, name, organization ? EntityTypes.Organization : EntityTypes.Name);
            }

            i = Math.Max(j, i + 1);
        }

        found.Sort((a, b) => a.Start.CompareTo(b.Start));
        return found;
    }

    private static bool IsCapitalised(string word) =>
        char.IsUpper(word[0]) && word.Length > 1 && word.Skip(1).Any(char.IsLetter) && !word.All(c => !char.IsLetter(c) || char.IsUpper(c)) || IsAcronymPart(word);

    // All-capital words ("IBM", "NASA") count inside a run of names but never start a name alone: see FindEntities.
    private static bool IsAcronymPart(string word) => word.Length is >= 2 and <= 6 && word.All(c => char.IsUpper(c) || char.IsDigit(c) || c == '&') && char.IsUpper(word[0]);

    private static bool EndsClause(string word) => word.EndsWith('.') && !word.EndsWith("Inc.", StringComparison.Ordinal) && !word.EndsWith("Ltd.", StringComparison.Ordinal)
        && !word.EndsWith("Co.", StringComparison.Ordinal) && !word.EndsWith("Corp.", StringComparison.Ordinal) && !(word.Length == 2 && char.IsUpper(word[0]));

    private static bool Adjacent(string sentence, Match left, Match right)
    {
        var gap = sentence.AsSpan(left.Index + left.Length, right.Index - left.Index - left.Length);
        return gap.Length == 1 && gap[0] == ' ';
    }
}

namespace Sutazai.Inference.LlamaCpp;

/// <summary>
/// Holds back streamed text that could be the start of a stop sequence, so a stop sequence never reaches the caller:
/// text is released once it can no longer be part of one, and generation ends where one completes.
/// </summary>
public sealed class StopSequenceFilter(IReadOnlyList<string> stops)
{
    private readonly List<string> _stops = stops.Where(s => s.Length > 0).ToList();
    private string _pending = "";

    public bool Stopped { get; private set; }

    /// <summary>Adds decoded text; returns the text that is safe to emit now.</summary>
    public string Push(string text)
    {
        if (Stopped || text.Length == 0) return "";
        if (_stops.Count == 0) return text;
        _pending += text;

        var cut = -1;
        foreach (var stop in _stops)
        {
            var at = _pending.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0)
        {
            Stopped = true;
            var before = _pending[..cut];
            _pending = "";
            return before;
        }

        var hold = 0;
        foreach (var stop in _stops)
        {
            for (var len = Math.Min(stop.Length - 1, _pending.Length); len > hold; len--)
            {
                if (_pending.AsSpan(_pending.Length - len).SequenceEqual(stop.AsSpan(0, len)))
                {
                    hold = len;
                    break;
                }
            }
        }
        var release = _pending[..^hold];
        _pending = _pending[^hold..];
        return release;
    }

    /// <summary>Text still held back when generation ends for another reason (it was not a stop sequence after all).</summary>
    public string Flush()
    {
        var rest = Stopped ? "" : _pending;
        _pending = "";
        return rest;
    }
}

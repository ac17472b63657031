namespace Sutazai.Inference.Pull;

/// <summary>
/// Bytes per second, smoothed with a time-weighted exponential moving average so that irregular sample spacing does
/// not skew it. Samples closer together than <paramref name="minSampleInterval"/> are folded into the next one.
/// </summary>
internal sealed class TransferRateMeter(TimeSpan timeConstant, TimeSpan minSampleInterval)
{
    private long _lastBytes;
    private TimeSpan _lastTime;
    private bool _hasRate;

    public double BytesPerSecond { get; private set; }

    public void Start(long bytes, TimeSpan at)
    {
        _lastBytes = bytes;
        _lastTime = at;
    }

    public double Observe(long bytes, TimeSpan at)
    {
        var elapsed = at - _lastTime;
        if (elapsed < minSampleInterval || elapsed <= TimeSpan.Zero)
        {
            return BytesPerSecond;
        }

        var instant = (bytes - _lastBytes) / elapsed.TotalSeconds;
        if (_hasRate)
        {
            var alpha = 1 - Math.Exp(-elapsed.TotalSeconds / timeConstant.TotalSeconds);
            BytesPerSecond += alpha * (instant - BytesPerSecond);
        }
        else
        {
            BytesPerSecond = instant;
            _hasRate = true;
        }

        _lastBytes = bytes;
        _lastTime = at;
        return BytesPerSecond;
    }
}

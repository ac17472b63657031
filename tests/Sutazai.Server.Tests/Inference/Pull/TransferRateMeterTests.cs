using Sutazai.Inference.Pull;

namespace Sutazai.Inference.Tests.Pull;

public sealed class TransferRateMeterTests
{
    [Fact]
    public void Observe_SmoothsWithTimeWeightedAverageAndFoldsCloseSamples()
    {
        var meter = new TransferRateMeter(TimeSpan.FromSeconds(3), TimeSpan.FromMilliseconds(100));
        meter.Start(0, TimeSpan.Zero);

        Assert.Equal(1000, meter.Observe(1000, TimeSpan.FromSeconds(1)), precision: 9);
        Assert.Equal(1283.4686894262109, meter.Observe(3000, TimeSpan.FromSeconds(2)), precision: 9);
        Assert.Equal(1283.4686894262109, meter.Observe(3100, TimeSpan.FromSeconds(2.05)), precision: 9);
        Assert.Equal(947.9923710576077, meter.Observe(3100, TimeSpan.FromSeconds(3)), precision: 9);
    }

    [Fact]
    public void Observe_BeforeAnySample_IsZero()
    {
        var meter = new TransferRateMeter(TimeSpan.FromSeconds(3), TimeSpan.FromMilliseconds(100));
        meter.Start(500, TimeSpan.FromSeconds(10));

        Assert.Equal(0, meter.Observe(900, TimeSpan.FromSeconds(10.05)));
    }
}

using System.Collections.Concurrent;
using Microsoft.Extensions.Logging.Abstractions;
using Sutazai.Server.Hosting;

namespace Sutazai.Server.Tests.Hosting;

/// <summary>
/// What every <see cref="IClusterBus"/> promises the hubs built on it (replies, runs, rate limits), on the in-process
/// bus and on Redis: distinct node ids, <c>Publish</c> never throws, a node never hears itself, every other node hears
/// each event once and in order (none at all on the in-process bus, which reaches no other node), a disposed
/// subscription hears nothing more, and a failing handler does not stop the events after it.
/// </summary>
public abstract class ClusterBusContractTests : IDisposable
{
    private readonly List<IClusterBus> _nodes = [];

    /// <summary>A fresh node on a network of its own (one per test): all nodes made by one test see each other.</summary>
    protected abstract IClusterBus CreateNode(string network);

    private readonly string _network = "contract-" + Guid.NewGuid().ToString("N")[..12];

    private IClusterBus Node()
    {
        var node = CreateNode(_network);
        _nodes.Add(node);
        return node;
    }

    public void Dispose()
    {
        foreach (var node in _nodes) (node as IDisposable)?.Dispose();
        GC.SuppressFinalize(this);
    }

    private static async Task WaitForAsync(Func<bool> done, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!done())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("Never saw " + what);
            await Task.Delay(20);
        }
    }

    [Fact]
    public void NodeIds_AreDistinct()
    {
        var ids = Enumerable.Range(0, 3).Select(_ => Node().NodeId).ToList();
        Assert.Equal(3, ids.Distinct(StringComparer.Ordinal).Count());
        Assert.All(ids, id => Assert.False(string.IsNullOrWhiteSpace(id)));
    }

    [Fact]
    public void Publish_NeverThrows_WhateverThePayload_AndWithNobodyListening()
    {
        var node = Node();
        foreach (var payload in new[] { "", "|", "a|b|c", "\u0000", "日本語 😀", new string('x', 100_000) })
            node.Publish("nobody-listens", payload);
    }

    [Fact]
    public async Task EveryOtherNode_HearsEachEventOnce_InOrder_AndThePublisherNever()
    {
        var (a, b, c) = (Node(), Node(), Node());
        var heardByA = new ConcurrentQueue<string>();
        var heardByB = new ConcurrentQueue<string>();
        var heardByC = new ConcurrentQueue<string>();
        using var subA = a.Subscribe("events", heardByA.Enqueue);
        using var subB = b.Subscribe("events", heardByB.Enqueue);
        using var subC = c.Subscribe("events", heardByC.Enqueue);
        var sent = Enumerable.Range(1, 50).Select(i => $"event {i}|payload").ToList();
        foreach (var e in sent) a.Publish("events", e);

        if (!a.ReachesOtherNodes)
        {
            // The in-process bus delivers nothing anywhere: its publishers skip the work when nobody else is there.
            Assert.Empty(heardByA);
            Assert.Empty(heardByB);
            Assert.Empty(heardByC);
            return;
        }
        await WaitForAsync(() => heardByB.Count >= sent.Count && heardByC.Count >= sent.Count, "every event on B and C");
        Assert.Equal(sent, heardByB);
        Assert.Equal(sent, heardByC);
        // B's marker comes after A's own events reached Redis; A hears the marker, never its own events.
        b.Publish("events", "marker");
        await WaitForAsync(() => heardByA.Contains("marker"), "B's marker on A");
        Assert.Equal(new[] { "marker" }, heardByA);
    }

    [Fact]
    public async Task ADisposedSubscription_HearsNothingMore_AndOthersOnTheTopicGoOn()
    {
        var (a, b) = (Node(), Node());
        var gone = new ConcurrentQueue<string>();
        var kept = new ConcurrentQueue<string>();
        var first = b.Subscribe("topic", gone.Enqueue);
        using var second = b.Subscribe("topic", kept.Enqueue);
        first.Dispose();
        first.Dispose(); // twice is harmless
        foreach (var i in Enumerable.Range(1, 5)) a.Publish("topic", i.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (a.ReachesOtherNodes) await WaitForAsync(() => kept.Count >= 5, "five events on the kept subscription");
        Assert.Equal(a.ReachesOtherNodes ? new[] { "1", "2", "3", "4", "5" } : Array.Empty<string>(), kept);
        Assert.Empty(gone);
    }

    [Fact]
    public async Task AFailingHandler_DoesNotStopTheEventsAfterIt()
    {
        var (a, b) = (Node(), Node());
        var heard = new ConcurrentQueue<string>();
        using var sub = b.Subscribe("flaky", e =>
        {
            heard.Enqueue(e);
            if (e == "boom") throw new InvalidOperationException("handler failed");
        });
        a.Publish("flaky", "boom");
        a.Publish("flaky", "after");
        if (a.ReachesOtherNodes) await WaitForAsync(() => heard.Count >= 2, "the event after the failure");
        Assert.Equal(a.ReachesOtherNodes ? new[] { "boom", "after" } : Array.Empty<string>(), heard);
    }
}

public sealed class LocalClusterBusContractTests : ClusterBusContractTests
{
    protected override IClusterBus CreateNode(string network) => new LocalClusterBus();
}

public sealed class RedisClusterBusContractTests : ClusterBusContractTests
{
    protected override IClusterBus CreateNode(string network) =>
        new RedisClusterBus(new RedisOptions { Connection = ClusterBusTests.Redis, ChannelPrefix = network }, NullLogger<RedisClusterBus>.Instance);
}

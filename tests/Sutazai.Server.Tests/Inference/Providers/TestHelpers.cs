using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using Sutazai.Inference.Tests.Fakes;

namespace Sutazai.Inference.Tests;

internal static class TestHelpers
{
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(15);

    public static async Task<List<ChatResponseUpdate>> CollectAsync(IAsyncEnumerable<ChatResponseUpdate> updates)
    {
        var list = new List<ChatResponseUpdate>();
        await foreach (var update in updates)
        {
            list.Add(update);
        }

        return list;
    }

    public static string[] Texts(IEnumerable<ChatResponseUpdate> updates) =>
        updates.Select(u => u.Text).Where(t => t.Length > 0).ToArray();

    public static UsageDetails Usage(ChatResponseUpdate update) =>
        Assert.Single(update.Contents.OfType<UsageContent>()).Details;

    public static void AssertUsage(UsageDetails usage, long input, long output, long total)
    {
        Assert.Equal(input, usage.InputTokenCount);
        Assert.Equal(output, usage.OutputTokenCount);
        Assert.Equal(total, usage.TotalTokenCount);
    }

    public static string[] Keys(JsonObject json) => json.Select(p => p.Key).Order(StringComparer.Ordinal).ToArray();

    public static string[] Strings(JsonNode? array) => array!.AsArray().Select(n => (string)n!).ToArray();

    /// <summary>
    /// Reads <paramref name="updates"/> until the first update arrives, cancels, and checks that the next read throws
    /// <see cref="OperationCanceledException"/> and that the server saw the connection close.
    /// </summary>
    public static async Task<List<ChatResponseUpdate>> CancelAfterFirstUpdateAsync(
        Func<CancellationToken, IAsyncEnumerable<ChatResponseUpdate>> start, FakeServer server)
    {
        server.HoldAfterFirstChunk = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var cts = new CancellationTokenSource();
        var received = new List<ChatResponseUpdate>();
        var enumerator = start(cts.Token).GetAsyncEnumerator(cts.Token);
        try
        {
            Assert.True(await enumerator.MoveNextAsync().AsTask().WaitAsync(Patience));
            received.Add(enumerator.Current);
            var next = enumerator.MoveNextAsync().AsTask();
            await Task.Delay(100);
            Assert.False(next.IsCompleted, "The stream should be waiting for the held server.");
            await cts.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => next.WaitAsync(Patience));
        }
        finally
        {
            await enumerator.DisposeAsync();
        }

        await server.StreamAborted.Task.WaitAsync(Patience);
        return received;
    }
}

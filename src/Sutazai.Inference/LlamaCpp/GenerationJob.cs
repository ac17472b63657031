using System.Threading.Channels;
using LLama.Native;
using Microsoft.Extensions.AI;

namespace Sutazai.Inference.LlamaCpp;

/// <summary>Sampling settings of one request, already validated.</summary>
public sealed record SamplingSettings(float Temperature, float TopP, int TopK, uint? Seed)
{
    public static SamplingSettings Greedy { get; } = new(0, 1, 0, null);

    public bool IsGreedy => Temperature <= 0;
}

/// <summary>What the decode loop tells the caller of one request.</summary>
public abstract record EngineEvent
{
    public sealed record Text(string Content) : EngineEvent;

    public sealed record Finished(ChatFinishReason Reason, GenerationStats Stats) : EngineEvent;

    public sealed record Failed(Exception Error) : EngineEvent;
}

/// <summary>Token counts and timings of one finished request.</summary>
public sealed record GenerationStats(
    int PromptTokens,
    int CachedPromptTokens,
    int CompletionTokens,
    double QueueMs,
    double PromptMs,
    double GenerationMs)
{
    public double TokensPerSecond => GenerationMs > 0 ? CompletionTokens / (GenerationMs / 1000.0) : 0;
}

/// <summary>One request inside the scheduler: its tokens, limits, output channel and cancellation.</summary>
internal sealed class GenerationJob
{
    public GenerationJob(IReadOnlyList<LLamaToken> promptTokens, SamplingSettings sampling, int maxTokens, IReadOnlyList<string> stop, CancellationToken cancellation)
    {
        PromptTokens = promptTokens;
        Sampling = sampling;
        MaxTokens = maxTokens;
        Stop = stop;
        Cancellation = cancellation;
    }

    public IReadOnlyList<LLamaToken> PromptTokens { get; }

    public SamplingSettings Sampling { get; }

    public int MaxTokens { get; }

    public IReadOnlyList<string> Stop { get; }

    public CancellationToken Cancellation { get; }

    public Channel<EngineEvent> Output { get; } = Channel.CreateUnbounded<EngineEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    public long EnqueuedAt { get; } = System.Diagnostics.Stopwatch.GetTimestamp();
}

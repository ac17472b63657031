using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Sutazai.Inference;

/// <summary>
/// Raw completions (<see cref="IModelProvider.CompleteAsync"/>: a prompt, no chat template) traced and measured the way
/// Microsoft.Extensions.AI's <c>UseOpenTelemetry</c> traces chat, with the OpenTelemetry GenAI conventions and
/// <c>gen_ai.operation.name = text_completion</c>: a CLIENT span <c>text_completion {model}</c> with the request
/// settings, finish reason and token usage, and the same <c>gen_ai.client.operation.duration</c> and
/// <c>gen_ai.client.token.usage</c> histograms (names, units, descriptions and buckets identical to the chat
/// client's, so the SDK merges both into one stream per metric). No prompt or completion text is recorded.
/// </summary>
internal static class CompletionTelemetry
{
    private const string Operation = "text_completion";

    private static readonly ActivitySource Source = new(ResolvedModel.TelemetrySource);
    private static readonly Meter Meter = new(ResolvedModel.TelemetrySource);

    // As Microsoft.Extensions.AI 10.11 declares them (the GenAI conventions' recommended buckets).
    private static readonly Histogram<double> Duration = Meter.CreateHistogram<double>(
        "gen_ai.client.operation.duration", "s", "Measures the duration of a GenAI operation",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92] });

    private static readonly Histogram<int> Tokens = Meter.CreateHistogram<int>(
        "gen_ai.client.token.usage", "{token}", "Measures number of input and output tokens used",
        advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864] });

    internal static async IAsyncEnumerable<ChatResponseUpdate> TraceAsync(
        ResolvedModel model, string prompt, ChatOptions? options, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (!Source.HasListeners() && !Duration.Enabled && !Tokens.Enabled)
        {
            await foreach (var update in model.Provider.CompleteAsync(model.ModelId, prompt, options, cancellationToken).ConfigureAwait(false))
            {
                yield return update;
            }

            yield break;
        }

        var provider = model.Provider.Name;
        using var activity = Source.StartActivity($"{Operation} {model.ModelId}", ActivityKind.Client);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("gen_ai.operation.name", Operation)
                .SetTag("gen_ai.provider.name", provider)
                .SetTag("gen_ai.request.model", model.ModelId)
                .SetTag("gen_ai.request.stream", true);
            if (options?.MaxOutputTokens is { } max) activity.SetTag("gen_ai.request.max_tokens", max);
            if (options?.Temperature is { } temperature) activity.SetTag("gen_ai.request.temperature", temperature);
            if (options?.TopP is { } topP) activity.SetTag("gen_ai.request.top_p", topP);
            if (options?.TopK is { } topK) activity.SetTag("gen_ai.request.top_k", topK);
            if (options?.Seed is { } seed) activity.SetTag("gen_ai.request.seed", seed);
        }

        var started = Stopwatch.GetTimestamp();
        string? responseId = null, responseModel = null;
        ChatFinishReason? finishReason = null;
        UsageDetails? usage = null;
        string? errorType = null;
        var updates = model.Provider.CompleteAsync(model.ModelId, prompt, options, cancellationToken).GetAsyncEnumerator(cancellationToken);
        try
        {
            while (true)
            {
                try
                {
                    if (!await updates.MoveNextAsync().ConfigureAwait(false))
                    {
                        break;
                    }
                }
                catch (Exception ex)
                {
                    errorType = ex.GetType().FullName;
                    activity?.SetTag("error.type", errorType).SetStatus(ActivityStatusCode.Error, ex.Message);
                    throw;
                }

                var update = updates.Current;
                responseId ??= update.ResponseId;
                responseModel ??= update.ModelId;
                finishReason = update.FinishReason ?? finishReason;
                foreach (var content in update.Contents)
                {
                    if (content is UsageContent u) usage = u.Details;
                }

                yield return update;
            }
        }
        finally
        {
            await updates.DisposeAsync().ConfigureAwait(false);
            var tags = new TagList
            {
                { "gen_ai.operation.name", Operation },
                { "gen_ai.request.model", model.ModelId },
                { "gen_ai.provider.name", provider },
            };
            if (responseModel is not null) tags.Add("gen_ai.response.model", responseModel);
            if (errorType is not null) tags.Add("error.type", errorType);
            Duration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, tags);
            if (usage?.InputTokenCount is { } input) Record(tags, "input", input);
            if (usage?.OutputTokenCount is { } output) Record(tags, "output", output);

            if (activity is { IsAllDataRequested: true })
            {
                if (responseId is not null) activity.SetTag("gen_ai.response.id", responseId);
                if (responseModel is not null) activity.SetTag("gen_ai.response.model", responseModel);
                if (finishReason is { } reason) activity.SetTag("gen_ai.response.finish_reasons", new[] { reason.Value });
                if (usage?.InputTokenCount is { } inputTokens) activity.SetTag("gen_ai.usage.input_tokens", (int)inputTokens);
                if (usage?.OutputTokenCount is { } outputTokens) activity.SetTag("gen_ai.usage.output_tokens", (int)outputTokens);
            }
        }
    }

    private static void Record(TagList tags, string type, long count)
    {
        if (!Tokens.Enabled) return;
        var withType = tags;
        withType.Add("gen_ai.token.type", type);
        Tokens.Record((int)count, withType);
    }
}

using System.Collections.Concurrent;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace Sutazai.Server.Tests.Infrastructure;

/// <summary>
/// An OTLP/HTTP (protobuf) receiver for tests: it keeps every export it is sent and decodes the parts the tests read,
/// spans (trace and parent ids, name, kind, attributes) and metric names with units, straight from the wire format
/// (opentelemetry-proto's trace/v1 and metrics/v1 field numbers).
/// </summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<byte[]> _traces = new(), _metrics = new();

    public sealed record Span(string TraceId, string SpanId, string ParentSpanId, string Name, int Kind, string Scope, IReadOnlyDictionary<string, object> Attributes);

    public sealed record Metric(string Name, string Unit, string Scope);

    private OtlpReceiver(WebApplication app) => _app = app;

    public Uri Root { get; private set; } = null!;

    public static async Task<OtlpReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var receiver = new OtlpReceiver(builder.Build());
        foreach (var (path, store) in new[] { ("/v1/traces", receiver._traces), ("/v1/metrics", receiver._metrics), ("/v1/logs", null) })
        {
            receiver._app.MapPost(path, async (HttpContext context) =>
            {
                using var body = new MemoryStream();
                await context.Request.Body.CopyToAsync(body);
                store?.Enqueue(body.ToArray());
                context.Response.ContentType = "application/x-protobuf";
                // An empty Export…ServiceResponse: everything accepted.
            });
        }
        await receiver._app.StartAsync();
        receiver.Root = new Uri(receiver._app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single());
        return receiver;
    }

    public List<Span> Spans() =>
        [.. from item in Items(_traces)
            let span = item.Item
            select new Span(Hex(span, 1), Hex(span, 2), Hex(span, 4), Text(span, 5) ?? "", (int)Varint(span, 6), item.Scope, Attributes(span, 9))];

    public List<Metric> Metrics() => [.. Items(_metrics).Select(m => new Metric(Text(m.Item, 1) ?? "", Text(m.Item, 3) ?? "", m.Scope))];

    /// <summary>
    /// The spans or metrics of every export with their scope's name: both requests nest them the same way
    /// (1: resource spans/metrics → 2: scope spans/metrics → 1: scope, 2: items).
    /// </summary>
    private static IEnumerable<(string Scope, byte[] Item)> Items(ConcurrentQueue<byte[]> exports) =>
        from export in exports.ToArray()
        from resource in Fields(export, 1)
        from scope in Fields(resource, 2)
        let scopeName = Fields(scope, 1).Select(s => Text(s, 1)).FirstOrDefault() ?? ""
        from item in Fields(scope, 2)
        select (scopeName, item);

    /// <summary>Every length-delimited field <paramref name="number"/> of a message.</summary>
    private static IEnumerable<byte[]> Fields(byte[] message, int number)
    {
        var input = new CodedInputStream(message);
        var found = new List<byte[]>();
        while (input.ReadTag() is var tag and not 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == number && WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited)
                found.Add(input.ReadBytes().ToByteArray());
            else
                input.SkipLastField();
        }
        return found;
    }

    private static string? Text(byte[] message, int number) =>
        Fields(message, number).Select(b => System.Text.Encoding.UTF8.GetString(b)).FirstOrDefault();

    private static string Hex(byte[] message, int number) => Convert.ToHexStringLower(Fields(message, number).FirstOrDefault() ?? []);

    private static ulong Varint(byte[] message, int number)
    {
        var input = new CodedInputStream(message);
        while (input.ReadTag() is var tag and not 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == number && WireFormat.GetTagWireType(tag) == WireFormat.WireType.Varint) return input.ReadUInt64();
            input.SkipLastField();
        }
        return 0;
    }

    /// <summary>KeyValue attributes: string, bool, int or double AnyValues.</summary>
    private static Dictionary<string, object> Attributes(byte[] message, int number)
    {
        var attributes = new Dictionary<string, object>();
        foreach (var pair in Fields(message, number))
        {
            var key = Text(pair, 1) ?? "";
            var value = Fields(pair, 2).FirstOrDefault();
            if (value is null) continue;
            var input = new CodedInputStream(value);
            var tag = input.ReadTag();
            attributes[key] = WireFormat.GetTagFieldNumber(tag) switch
            {
                1 => input.ReadString(),
                2 => input.ReadBool(),
                3 => input.ReadInt64(),
                4 => input.ReadDouble(),
                _ => "(other)",
            };
        }
        return attributes;
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}

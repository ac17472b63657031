using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using Sutazai.Server.Tests.Chat;
using Sutazai.Server.Tests.Infrastructure;

namespace Sutazai.Server.Tests.Robustness;

/// <summary>Hostile bodies and frames get a clear 4xx (415, 400, 422) and never a server error or a silent close.</summary>
public sealed class InputPipelineTests(ModelAppFixture fixture) : IClassFixture<ModelAppFixture>
{
    private HttpClient Client() => fixture.App.Client(fixture.AdminTokens.AccessToken);

    private static ByteArrayContent Body(byte[] bytes, string? contentType = "application/json")
    {
        var content = new ByteArrayContent(bytes);
        if (contentType is not null) content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        return content;
    }

    private static ByteArrayContent Body(string json, string? contentType = "application/json") => Body(Encoding.UTF8.GetBytes(json), contentType);

    [Theory]
    [InlineData("application/json; charset=bogus", "The body must be UTF-8; the Content-Type names charset 'bogus'.")]
    [InlineData(";;;", "The Content-Type header is not a valid media type; send application/json.")]
    [InlineData("application/json, text/plain", "The Content-Type header is not a valid media type; send application/json.")]
    public async Task BadContentType_Is415WithTheReason_AndStoresNothing(string contentType, string detail)
    {
        using var client = Client();
        var before = await fixture.App.WithDbAsync(db => Task.FromResult(db.Conversations.Count()));
        var response = await client.PostAsync("/api/v1/conversations", Body("{\"title\":\"x\"}", contentType));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        Assert.Equal(detail, (await response.ReadJsonAsync()).GetProperty("detail").GetString());
        Assert.Equal(before, await fixture.App.WithDbAsync(db => Task.FromResult(db.Conversations.Count())));
    }

    [Fact]
    public async Task AnEmptyBodyWithAnUnreadableCharset_Is415_NotAServerError()
    {
        using var client = Client();
        var response = await client.PostAsync("/api/v1/auth/login", Body([], "application/json; charset=\"utf-16\""));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        Assert.Equal("The body must be UTF-8; the Content-Type names charset 'utf-16'.", (await response.ReadJsonAsync()).GetProperty("detail").GetString());
    }

    [Fact]
    public async Task AUrlThatCannotBeFetched_Is422OnUrl_NotABadGateway()
    {
        using var client = Client();
        var response = await client.PostJsonAsync("/api/v1/documents/url", new { url = "https://example.invalid/" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var error = Assert.Single((await response.ReadJsonAsync()).GetProperty("errors").GetProperty("url").EnumerateArray()).GetString();
        Assert.StartsWith("https://example.invalid/ could not be fetched: ", error);
    }

    [Fact]
    public async Task PlainText_ToAJsonRoute_Is415_AndStoresNothing()
    {
        using var client = Client();
        var before = await fixture.App.WithDbAsync(db => Task.FromResult(db.Conversations.Count()));
        var response = await client.PostAsync("/api/v1/conversations", Body("{\"title\":\"x\"}", "text/plain"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        Assert.Equal("This endpoint reads JSON; the body was sent as 'text/plain'. Send application/json.", (await response.ReadJsonAsync()).GetProperty("detail").GetString());
        Assert.Equal(before, await fixture.App.WithDbAsync(db => Task.FromResult(db.Conversations.Count())));
    }

    [Fact]
    public async Task PlainText_ToAnOpenAIRoute_Is415InOpenAIsShape()
    {
        using var client = Client();
        var response = await client.PostAsync("/v1/embeddings", Body("{}", "text/plain"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        var error = (await response.ReadJsonAsync()).GetProperty("error");
        Assert.Equal("unsupported_media_type", error.GetProperty("code").GetString());
        Assert.Equal("This endpoint reads JSON; the body was sent as 'text/plain'. Send application/json.", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task AnErrorForAClientThatAcceptsOnlyXml_IsStillAProblemDocument()
    {
        using var client = Client();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/generate") { Content = Body("{\"prompt\":", "application/json") };
        request.Headers.Accept.ParseAdd("application/xml");
        var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.StartsWith("The request body is not valid JSON: ", (await response.ReadJsonAsync()).GetProperty("detail").GetString());
    }

    [Theory]
    [InlineData("/api/v1/documents", "multipart/form-data; boundary=zz", "{\"a\":1}")]
    [InlineData("/api/v1/documents", "multipart/form-data", "--zz\r\nContent-Disposition: form-data; name=\"file\"")]
    [InlineData("/api/v1/auth/login", "application/x-www-form-urlencoded", null)]
    public async Task AMalformedFormBody_Is400NamingWhy(string path, string contentType, string? body)
    {
        using var client = Client();
        var before = await fixture.App.WithDbAsync(db => Task.FromResult(db.Documents.Count()));
        // A form key longer than the reader's 2048-character limit.
        var response = await client.PostAsync(path, Body(body ?? new string('[', 20_000) + "=1", contentType));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith("The form body could not be read: ", (await response.ReadJsonAsync()).GetProperty("detail").GetString());
        Assert.Equal(before, await fixture.App.WithDbAsync(db => Task.FromResult(db.Documents.Count())));
    }

    [Fact]
    public async Task BadContentType_OnTheOpenAIRoutes_Is415InOpenAIsShape()
    {
        using var client = Client();
        var response = await client.PostAsync("/v1/chat/completions", Body("{}", "application/json; charset=latin1"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        var error = (await response.ReadJsonAsync()).GetProperty("error");
        Assert.Equal("unsupported_media_type", error.GetProperty("code").GetString());
        Assert.Equal("The body must be UTF-8; the Content-Type names charset 'latin1'.", error.GetProperty("message").GetString());
    }

    [Theory]
    [InlineData("/api/v1/generate", "{\"prompt\":\"hi \\ud800 there\"}")]
    [InlineData("/v1/completions", "{\"model\":\"tiny-deterministic\",\"prompt\":\"\\udc00\"}")]
    [InlineData("/v1/embeddings", "{\"model\":\"tiny-deterministic\",\"input\":[\"ok\",\"\\ud83d\"]}")]
    public async Task LoneSurrogate_Is400NamingUnicode(string path, string json)
    {
        using var client = Client();
        var response = await client.PostAsync(path, Body(json));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var body = await response.ReadJsonAsync();
        var detail = path.StartsWith("/v1/", StringComparison.Ordinal)
            ? body.GetProperty("error").GetProperty("message").GetString()
            : body.GetProperty("detail").GetString();
        Assert.StartsWith("The request body holds a string (near byte ", detail);
        Assert.Contains("that is not valid Unicode", detail);
    }

    [Fact]
    public async Task InvalidUtf8_Is400WithTheOffset()
    {
        using var client = Client();
        var bytes = Encoding.UTF8.GetBytes("{\"prompt\":\"ab").Concat(new byte[] { 0xC3, 0x28 }).Concat(Encoding.UTF8.GetBytes("\"}")).ToArray();
        var response = await client.PostAsync("/api/v1/generate", Body(bytes));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("The request body is not valid UTF-8 (the first invalid byte is at offset 13).", (await response.ReadJsonAsync()).GetProperty("detail").GetString());
    }

    [Fact]
    public async Task NestingBeyondTheLimit_Is400()
    {
        using var client = Client();
        var json = "{\"prompt\":\"x\",\"options\":" + new string('[', 100) + new string(']', 100) + "}";
        var response = await client.PostAsync("/api/v1/generate", Body(json));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith("The request body nests deeper than 64 levels", (await response.ReadJsonAsync()).GetProperty("detail").GetString());
    }

    [Fact]
    public async Task MegabytePrompt_IsRefusedBeforeTokenizing_NamingTheField()
    {
        using var client = Client();
        var prompt = new string('a', 1 << 20);
        var response = await client.PostAsync("/api/v1/generate", Body("{\"prompt\":\"" + prompt + "\"}"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Equal($"The prompt is {1 << 20} characters; the limit is 200000 (Sutazai:Inference:MaxPromptChars).",
            (await response.ReadJsonAsync()).GetProperty("errors").GetProperty("prompt")[0].GetString());

        var openai = await client.PostAsync("/v1/embeddings", Body("{\"model\":\"tiny-deterministic\",\"input\":\"" + prompt + "\"}"));
        Assert.Equal(HttpStatusCode.BadRequest, openai.StatusCode);
        var error = (await openai.ReadJsonAsync()).GetProperty("error");
        Assert.Equal("input[0]", error.GetProperty("param").GetString());
    }

    [Fact]
    public async Task PromptOverTheModelsContext_Is400WithTheTokenCounts()
    {
        using var client = Client();
        var prompt = string.Join(' ', Enumerable.Repeat("hello world", 6000));
        var response = await client.PostAsync("/api/v1/generate", Body("{\"prompt\":\"" + prompt + "\"}"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var detail = (await response.ReadJsonAsync()).GetProperty("detail").GetString()!;
        Assert.Matches(@"^The prompt is \d+ tokens but model 'tiny-deterministic' holds at most \d+\. Shorten it, or use a model with a longer context\.$", detail);
    }

    [Theory]
    [InlineData("/ws/chat")]
    [InlineData("/ws/jarvis")]
    public async Task SocketFrameWithALoneSurrogate_GetsInvalidJson_AndTheSocketStaysOpen(string path)
    {
        await using var socket = await ChatClient.ConnectAsync(fixture.App, fixture.AdminTokens.AccessToken, path);
        await socket.ReadConnectionAsync();
        await socket.SendRawAsync("{\"type\":\"chat\",\"message\":\"\\ud800\"}");
        var error = (await socket.ReceiveAsync())!.Value;
        Assert.Equal("error", error.GetProperty("type").GetString());
        Assert.Equal("invalid_json", error.GetProperty("code").GetString());
        await socket.Socket.SendAsync(new byte[] { 0xFF, 0xFE }, WebSocketMessageType.Text, true, CancellationToken.None);
        Assert.Equal("invalid_json", (await socket.ReceiveAsync())!.Value.GetProperty("code").GetString());
        // A leading byte order mark is allowed, as in request bodies.
        await socket.Socket.SendAsync(Encoding.UTF8.GetBytes("\ufeff{\"type\":\"ping\"}"), WebSocketMessageType.Text, true, CancellationToken.None);
        Assert.Equal("pong", (await socket.ReceiveAsync())!.Value.GetProperty("type").GetString());
        Assert.Equal(WebSocketState.Open, socket.Socket.State);
    }
}

using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Sutazai.Data.Entities;
using Sutazai.Server.Tests.Cli;
using Sutazai.Server.Tests.Infrastructure;
using Sutazai.Inference.Tests.Fakes;

namespace Sutazai.Server.Tests.Robustness;

/// <summary>
/// kill -9 in the middle of a reply, on a real server process, then a restart on the same data dir: the reply is
/// settled as <c>interrupted</c> and can be regenerated. The model is a fake OpenAI server that sends one chunk and
/// then holds the stream, so the reply cannot finish on its own before the kill.
/// </summary>
public sealed class InterruptedReplyTests : IAsyncLifetime
{
    private readonly string _dataDir = Directory.CreateTempSubdirectory("sutazai-kill-").FullName;
    private FakeOpenAIServer _model = null!;

    public async Task InitializeAsync()
    {
        _model = await FakeOpenAIServer.StartNewAsync();
        _model.HoldAfterFirstChunk = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public async Task DisposeAsync()
    {
        _model.HoldAfterFirstChunk?.TrySetResult();
        await _model.DisposeAsync();
        try
        {
            Directory.Delete(_dataDir, recursive: true);
        }
        catch (IOException)
        {
            // the killed server's files may still be closing
        }
    }

    [Fact]
    public async Task KillNineMidReply_RestartMarksTheReplyInterrupted_AndItCanBeRegenerated()
    {
        var cli = new SutazaiProcess(_dataDir);
        cli.Environment["Sutazai__Inference__Provider"] = "openai";
        cli.Environment["Sutazai__Inference__OpenAI__BaseUrl"] = _model.BaseUrl;
        var port = SutazaiProcess.FreePort();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(30) };

        Guid conversationId, assistantId;
        var first = await cli.ServeAsync(port, http, "/health/ready");
        try
        {
            var (_, tokens) = await Accounts.RegisterAndLoginAsync(http);
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", tokens.AccessToken);
            var created = await http.PostAsJsonAsync("/api/v1/conversations", new { model = FakeOpenAIServer.Qwen });
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            conversationId = (await created.ReadJsonAsync()).GetProperty("id").GetGuid();

            using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/conversations/{conversationId}/messages")
            {
                Content = JsonContent.Create(new { content = "Tell me everything." }),
            };
            request.Headers.Accept.ParseAdd("text/event-stream");
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await using var stream = await response.Content.ReadAsStreamAsync(timeout.Token);
            using var reader = new StreamReader(stream);
            assistantId = Guid.Empty;
            while (assistantId == Guid.Empty && await reader.ReadLineAsync(timeout.Token) is { } line)
            {
                if (line.StartsWith("data: ", StringComparison.Ordinal) && line.Contains("\"assistantMessageId\"", StringComparison.Ordinal))
                    assistantId = System.Text.Json.JsonDocument.Parse(line[6..]).RootElement.GetProperty("assistantMessageId").GetGuid();
            }
            Assert.NotEqual(Guid.Empty, assistantId);
            // Wait for the model's first chunk: the fake then holds the stream, so the reply cannot finish.
            while (_model.ChunksSent == 0) await Task.Delay(50, timeout.Token);
            // The fake holds the stream after its first chunk: the reply is mid-flight now.
            first.Kill(entireProcessTree: true);
            await first.WaitForExitAsync();
        }
        finally
        {
            if (!first.HasExited) first.Kill(entireProcessTree: true);
        }

        var second = await cli.ServeAsync(port, http, "/health/ready");
        try
        {
            var messages = await (await http.GetAsync($"/api/v1/conversations/{conversationId}/messages")).ReadJsonAsync();
            var reply = messages.EnumerateArray().Single(m => m.GetProperty("id").GetGuid() == assistantId);
            Assert.Equal(MessageStatus.Interrupted, reply.GetProperty("status").GetString());
            Assert.Equal("The server stopped before this reply finished. Regenerate it to get a whole answer.", reply.GetProperty("error").GetString());

            // The fake holds only its first stream; a regeneration answers in full.
            var again = await http.PostAsJsonAsync($"/api/v1/conversations/{conversationId}/messages/{assistantId}/regenerate", new { });
            Assert.Equal(HttpStatusCode.Created, again.StatusCode);
            var regenerated = (await again.ReadJsonAsync()).GetProperty("assistantMessage");
            Assert.Equal("complete", regenerated.GetProperty("status").GetString());
            Assert.Equal(string.Concat(FakeOpenAIServer.ChatTokens), regenerated.GetProperty("content").GetString());
        }
        finally
        {
            second.Kill(entireProcessTree: true);
            await second.WaitForExitAsync();
        }
    }
}

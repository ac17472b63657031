using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Sutazai.Data.Entities;
using Sutazai.Server.Tests.Cli;
using Sutazai.Server.Tests.Infrastructure;
using Sutazai.Server.Tests.Platform;

namespace Sutazai.Server.Tests.Hosting;

/// <summary>
/// Two server processes, each with its own data dir (as on two machines), sharing one PostgreSQL database: what one
/// node signs — an access token, the UI's antiforgery token and sign-in cookie — the other accepts, because the JWT
/// signing key and the data-protection key ring live in the database, and neither node keeps a key on its disk.
/// </summary>
public sealed partial class SeparateNodesTests : IAsyncLifetime
{
    private readonly string _database = "sutazai_nodes_" + Guid.NewGuid().ToString("N");
    private readonly List<string> _dataDirs = [];
    private readonly List<System.Diagnostics.Process> _processes = [];

    [GeneratedRegex("name=\"__RequestVerificationToken\" value=\"([^\"]+)\"")]
    private static partial Regex AntiforgeryField();

    public Task InitializeAsync()
    {
        TestApp.CreatePostgresDatabase(_database);
        return Task.CompletedTask;
    }

    private async Task<(SutazaiProcess Node, HttpClient Http)> StartNodeAsync(CookieContainer cookies, string role = "all", Dictionary<string, string>? environment = null,
        bool withModel = false)
    {
        var dataDir = Directory.CreateTempSubdirectory("sutazai-node-").FullName;
        _dataDirs.Add(dataDir);
        if (withModel) ModelAppFixtureBase.WriteModel(dataDir);
        var node = new SutazaiProcess(dataDir);
        node.Environment["Sutazai__Database__Provider"] = "postgres";
        node.Environment["Sutazai__Database__ConnectionString"] = TestApp.PostgresConnectionString(_database);
        node.Environment["Sutazai__RateLimits__AuthPerMinute"] = "100000";
        node.Environment["Sutazai__Role"] = role;
        node.Environment["Sutazai__Tasks__Transport"] = "database";
        node.Environment["Sutazai__Cluster__HeartbeatSeconds"] = "1";
        node.Environment["Sutazai__Cluster__NodeTimeoutSeconds"] = "4";
        foreach (var (name, value) in environment ?? []) node.Environment[name] = value;
        var port = SutazaiProcess.FreePort();
        var http = new HttpClient(new HttpClientHandler { CookieContainer = cookies, AllowAutoRedirect = false })
        {
            BaseAddress = new Uri($"http://127.0.0.1:{port}"),
            Timeout = TimeSpan.FromSeconds(30),
        };
        _processes.Add(await node.ServeAsync(port, http));
        return (node, http);
    }

    [Fact]
    public async Task TokensAntiforgeryAndCookiesFromOneNode_WorkOnTheOther_AndNoKeyIsOnEitherDisk()
    {
        // One browser: cookies are per host, not per port, so both nodes see the same jar, as behind one gateway.
        var cookies = new CookieContainer();
        var (a, nodeA) = await StartNodeAsync(cookies);
        var (b, nodeB) = await StartNodeAsync(cookies);
        using var _ = nodeA;
        using var __ = nodeB;

        // An access token issued by A is accepted by B.
        var (user, tokens) = await Accounts.RegisterAndLoginAsync(nodeA);
        using (var me = new HttpRequestMessage(HttpMethod.Get, "/api/v1/users/me"))
        {
            me.Headers.Authorization = new AuthenticationHeaderValue("Bearer", tokens.AccessToken);
            var response = await nodeB.SendAsync(me);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(user.Username, (await response.ReadJsonAsync()).GetProperty("username").GetString());
        }
        // A refresh token from A is exchanged on B.
        var refreshed = await nodeB.PostAsJsonAsync("/api/v1/auth/refresh", new { refreshToken = tokens.RefreshToken });
        Assert.Equal(HttpStatusCode.OK, refreshed.StatusCode);

        // The sign-in form rendered by A (its antiforgery token and cookie) is posted to B, which signs the user in.
        var form = await nodeA.GetAsync("/login");
        Assert.Equal(HttpStatusCode.OK, form.StatusCode);
        var antiforgery = AntiforgeryField().Match(await form.Content.ReadAsStringAsync()).Groups[1].Value;
        Assert.NotEmpty(antiforgery);
        var signIn = await nodeB.PostAsync("/login", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["_handler"] = "login",
            ["__RequestVerificationToken"] = antiforgery,
            ["Input.Login"] = user.Username,
            ["Input.Password"] = user.Password,
        }));
        Assert.Equal(HttpStatusCode.Redirect, signIn.StatusCode);
        Assert.Contains(cookies.GetAllCookies(), c => c.Name == "sutazai.session");

        // The cookie B set opens the UI on A (without it, A redirects to /login).
        using (var page = new HttpRequestMessage(HttpMethod.Get, "/"))
        {
            page.Headers.Accept.ParseAdd("text/html");
            var response = await nodeA.SendAsync(page);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        foreach (var dataDir in _dataDirs)
            Assert.False(Directory.Exists(Path.Combine(dataDir, "keys")), $"{dataDir} holds a keys folder");
        Assert.NotEqual(a.DataDir, b.DataDir);
    }

    /// <summary>
    /// The node registry: two API nodes and a worker, each its own process and data dir, list themselves; a node killed
    /// with SIGKILL turns "gone" once its heartbeats stop, one stopped with SIGTERM says "stopped".
    /// </summary>
    [Fact]
    public async Task EveryNodeRegisters_AKilledOneIsGone_AndACleanlyStoppedOneIsStopped()
    {
        var cookies = new CookieContainer();
        var (_, nodeA) = await StartNodeAsync(cookies, "all");
        var (_, nodeB) = await StartNodeAsync(cookies, "api");
        var (_, workerHttp) = await StartNodeAsync(cookies, "worker");
        using var _ = nodeA;
        using var __ = nodeB;
        using var ___ = workerHttp;
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(nodeA); // the first account: an administrator
        nodeB.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", tokens.AccessToken);
        var ids = _dataDirs.Select(d => File.ReadAllText(Path.Combine(d, "node-id")).Trim()).ToArray();

        async Task<Dictionary<string, System.Text.Json.JsonElement>> NodesAsync()
        {
            var response = await nodeB.GetAsync("/api/v1/admin/nodes");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            return (await response.ReadJsonAsync()).EnumerateArray().ToDictionary(n => n.GetProperty("id").GetString()!);
        }
        async Task<Dictionary<string, System.Text.Json.JsonElement>> WaitAsync(Func<Dictionary<string, System.Text.Json.JsonElement>, bool> done)
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            var nodes = await NodesAsync();
            while (!done(nodes) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(250);
                nodes = await NodesAsync();
            }
            return nodes;
        }

        var listed = await WaitAsync(n => ids.All(n.ContainsKey));
        Assert.Equal(ids.Order(), listed.Keys.Order());
        Assert.Equal(["all", "api", "worker"], ids.Select(id => listed[id].GetProperty("role").GetString()));
        Assert.All(listed.Values, n => Assert.Equal("up", n.GetProperty("status").GetString()));
        Assert.Equal([false, true, false], ids.Select(id => listed[id].GetProperty("self").GetBoolean())); // asked through B
        Assert.Equal($"http://127.0.0.1:{nodeA.BaseAddress!.Port}", listed[ids[0]].GetProperty("address").GetString());
        Assert.Equal(_processes[0].Id, listed[ids[0]].GetProperty("processId").GetInt32());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, listed[ids[1]].GetProperty("queueDepth").ValueKind); // an api node runs no worker

        // kill -9 of node A: its heartbeats stop, and it is listed as gone.
        _processes[0].Kill(entireProcessTree: true);
        await _processes[0].WaitForExitAsync();
        var afterKill = await WaitAsync(n => n[ids[0]].GetProperty("status").GetString() == "gone");
        Assert.Equal("gone", afterKill[ids[0]].GetProperty("status").GetString());
        Assert.Equal("up", afterKill[ids[1]].GetProperty("status").GetString());
        Assert.Equal("up", afterKill[ids[2]].GetProperty("status").GetString());

        // SIGTERM of the worker: it stops cleanly and says so.
        using (var term = System.Diagnostics.Process.Start("kill", ["-TERM", _processes[2].Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            await term.WaitForExitAsync();
        await _processes[2].WaitForExitAsync();
        var afterStop = await NodesAsync();
        Assert.Equal("stopped", afterStop[ids[2]].GetProperty("status").GetString());
        Assert.NotEqual(System.Text.Json.JsonValueKind.Null, afterStop[ids[2]].GetProperty("stoppedAt").ValueKind);
        Assert.Equal(["up", "gone", "stopped"], afterStop.Values.Select(n => n.GetProperty("status").GetString())); // up first
    }

    /// <summary>
    /// Ingestion is a task on the durable queue and every node's embedded index follows the database: a document
    /// uploaded through an API node (which runs no worker) is ingested by the worker node, then found by vector search
    /// through both API nodes' own USearch indexes, and a deletion through one disappears from the other. The periodic
    /// index sync is set to 10 minutes, so what brings the other nodes' indexes up to date is the lifecycle event
    /// (<c>document.indexed</c>, <c>document.deleted</c>) reaching them over Redis; both events are also on
    /// <c>system.events</c>.
    /// </summary>
    [Fact]
    public async Task AnUploadThroughOneNode_IsIngestedByTheWorker_FoundThroughAnother_AndDeletedEverywhere()
    {
        var cookies = new CookieContainer();
        var bus = new Dictionary<string, string>
        {
            ["Sutazai__Redis__Connection"] = ClusterBusTests.Redis,
            ["Sutazai__Redis__ChannelPrefix"] = "nodes-" + Guid.NewGuid().ToString("N")[..8],
            ["Sutazai__Knowledge__IndexSyncInterval"] = "00:10:00",
        };
        var (_, nodeA) = await StartNodeAsync(cookies, "api", bus);
        var (_, nodeB) = await StartNodeAsync(cookies, "api", bus);
        var (_, workerHttp) = await StartNodeAsync(cookies, "worker", bus);
        using var _ = nodeA;
        using var __ = nodeB;
        using var ___ = workerHttp;
        var (_, tokens) = await Accounts.RegisterAndLoginAsync(nodeA);
        foreach (var node in new[] { nodeA, nodeB }) node.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", tokens.AccessToken);

        var form = new MultipartFormDataContent();
        var part = new ByteArrayContent(System.Text.Encoding.UTF8.GetBytes("Volcanoes erupt molten lava that cools into basalt rock."));
        part.Headers.ContentType = new MediaTypeHeaderValue("text/plain");
        form.Add(part, "file", "volcano.txt");
        var upload = await nodeA.PostAsync("/api/v1/documents", form);
        Assert.Equal(HttpStatusCode.Accepted, upload.StatusCode);
        var id = (await upload.ReadJsonAsync()).GetProperty("documents")[0].GetProperty("id").GetGuid();
        Assert.Equal("indexed", (await Documents.WaitIndexedAsync(nodeB, id)).GetProperty("status").GetString());

        // It went through the queue, and the worker (the only node with a task worker) did it.
        await using (var connection = new Npgsql.NpgsqlConnection(TestApp.PostgresConnectionString(_database)))
        {
            await connection.OpenAsync();
            await using var command = new Npgsql.NpgsqlCommand(
                "SELECT t.\"Status\" FROM documents d JOIN task_queue t ON t.\"Id\" = d.\"IngestionTaskId\" WHERE d.\"Id\" = @id AND t.\"Kind\" = 'knowledge.ingest'", connection);
            command.Parameters.AddWithValue("id", id);
            // The document is indexed a moment before the worker acknowledges its task.
            var deadline = DateTime.UtcNow.AddSeconds(60);
            var status = (string?)await command.ExecuteScalarAsync();
            while (status != "done" && DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
                status = (string?)await command.ExecuteScalarAsync();
            }
            Assert.Equal("done", status);
        }

        async Task<int> VectorHitsAsync(HttpClient node) =>
            (await (await node.GetAsync("/api/v1/search?q=molten+lava+from+volcanoes&mode=vector")).ReadJsonAsync()).EnumerateArray()
                .Count(h => h.GetProperty("documentId").GetGuid() == id);
        async Task<int> WaitHitsAsync(HttpClient node, int expected)
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            var hits = await VectorHitsAsync(node);
            while (hits != expected && DateTime.UtcNow < deadline)
            {
                await Task.Delay(250);
                hits = await VectorHitsAsync(node);
            }
            return hits;
        }
        Assert.Equal(1, await WaitHitsAsync(nodeA, 1));
        Assert.Equal(1, await WaitHitsAsync(nodeB, 1));

        Assert.Equal(HttpStatusCode.NoContent, (await nodeA.DeleteAsync($"/api/v1/documents/{id}")).StatusCode);
        Assert.Equal(0, await VectorHitsAsync(nodeA)); // the deleting node at once
        Assert.Equal(0, await WaitHitsAsync(nodeB, 0)); // the other once it synced
        Assert.Equal(HttpStatusCode.NotFound, (await nodeB.GetAsync($"/api/v1/documents/{id}")).StatusCode);

        // Both lifecycle events went onto system.events too (durable, for consumers that must not miss one).
        await using (var connection = new Npgsql.NpgsqlConnection(TestApp.PostgresConnectionString(_database)))
        {
            await connection.OpenAsync();
            await using var command = new Npgsql.NpgsqlCommand(
                "SELECT t.\"Kind\" FROM task_queue t WHERE t.\"Queue\" = 'system.events' AND t.\"Payload\" LIKE @id ORDER BY t.\"CreatedAt\"", connection);
            command.Parameters.AddWithValue("id", $"%{id}%");
            var kinds = new List<string>();
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync()) kinds.Add(reader.GetString(0));
            Assert.Equal(["document.indexed", "document.deleted"], kinds);
        }
    }

    /// <summary>
    /// deploy/nginx/sutazai.conf, as shipped, in front of two node processes: sign-in, a streamed /ws/chat reply and
    /// the API all go through it, /metrics is refused, and when one node is killed with SIGKILL the gateway keeps
    /// answering through the other (passive failover).
    /// </summary>
    [Fact]
    public async Task TheShippedNginxGateway_StreamsSockets_HidesMetrics_AndFailsOverWhenANodeDies()
    {
        var cookies = new CookieContainer();
        var model = new Dictionary<string, string>
        {
            ["Sutazai__Inference__DefaultModel"] = ModelAppFixtureBase.ModelId,
            ["Sutazai__Inference__LlamaCpp__ContextSize"] = "4096",
            ["Sutazai__Http__KnownProxies"] = "127.0.0.1",
        };
        var (_, nodeA) = await StartNodeAsync(cookies, "all", model, withModel: true);
        var (_, nodeB) = await StartNodeAsync(cookies, "all", model, withModel: true);
        using var _ = nodeA;
        using var __ = nodeB;

        // The shipped file with the compose names swapped for the two processes, listening on a free loopback port.
        var gatewayDir = Directory.CreateTempSubdirectory("sutazai-nginx-").FullName;
        _dataDirs.Add(gatewayDir);
        var port = SutazaiProcess.FreePort();
        var conf = (await File.ReadAllTextAsync(Path.Combine(DeployTests.Deploy, "nginx", "sutazai.conf")))
            .Replace("server node1:8080", $"server 127.0.0.1:{nodeA.BaseAddress!.Port}", StringComparison.Ordinal)
            .Replace("server node2:8080", $"server 127.0.0.1:{nodeB.BaseAddress!.Port}", StringComparison.Ordinal)
            .Replace("listen 80;", $"listen 127.0.0.1:{port};", StringComparison.Ordinal);
        await File.WriteAllTextAsync(Path.Combine(gatewayDir, "sutazai.conf"), conf);
        var main = Path.Combine(gatewayDir, "nginx.conf");
        await File.WriteAllTextAsync(main, $"user root;\npid {gatewayDir}/nginx.pid;\nerror_log {gatewayDir}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n" +
            $"  client_body_temp_path {gatewayDir}/body;\n  proxy_temp_path {gatewayDir}/proxy;\n  include {gatewayDir}/sutazai.conf;\n}}\n");
        var nginx = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("nginx", ["-p", gatewayDir, "-c", main, "-g", "daemon off;"])
        {
            RedirectStandardError = true,
            UseShellExecute = false,
        }) ?? throw new InvalidOperationException("nginx did not start.");
        _processes.Add(nginx);
        using var gateway = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(30) };
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                if ((await gateway.GetAsync("/health")).StatusCode == HttpStatusCode.OK) break;
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline && !nginx.HasExited)
            {
                await Task.Delay(100);
            }
        }

        var (_, tokens) = await Accounts.RegisterAndLoginAsync(gateway);
        Assert.Equal(HttpStatusCode.NotFound, (await gateway.GetAsync("/metrics")).StatusCode);

        async Task<string> ChatThroughGatewayAsync()
        {
            using var socket = new System.Net.WebSockets.ClientWebSocket();
            await socket.ConnectAsync(new Uri($"ws://127.0.0.1:{port}/ws/chat?access_token={Uri.EscapeDataString(tokens.AccessToken)}"), CancellationToken.None);
            await using var chat = new Sutazai.Server.Tests.Chat.ChatClient(socket);
            Assert.Equal("connection", (await chat.ReceiveAsync(TimeSpan.FromSeconds(30)))!.Value.GetProperty("type").GetString());
            await chat.SendAsync(new { type = "chat", message = "Hi through the gateway", options = new { temperature = 0 } });
            var frames = await chat.ReceiveUntilAsync("stream_end");
            var chunks = frames.Where(f => f.GetProperty("type").GetString() == "stream_chunk").Select(f => f.GetProperty("content").GetString()).ToList();
            Assert.True(chunks.Count > 1, "the reply arrived in one piece, not streamed");
            Assert.Equal(frames[^1].GetProperty("fullResponse").GetString(), string.Concat(chunks));
            return string.Concat(chunks);
        }
        Assert.Equal(Sutazai.TestSupport.DeterministicModelSpec.DefaultExpectations.ChatReply, await ChatThroughGatewayAsync());

        // SIGKILL one node: the gateway keeps answering, through the other.
        _processes[0].Kill(entireProcessTree: true);
        await _processes[0].WaitForExitAsync();
        gateway.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", tokens.AccessToken);
        for (var i = 0; i < 6; i++) Assert.Equal(HttpStatusCode.OK, (await gateway.GetAsync("/api/v1/users/me")).StatusCode);
        var username = (await (await gateway.GetAsync("/api/v1/users/me")).ReadJsonAsync()).GetProperty("username").GetString()!;
        using (var anonymous = new HttpClient { BaseAddress = gateway.BaseAddress })
            Assert.NotEmpty((await Accounts.LoginAsync(anonymous, username)).AccessToken); // a POST fails over too
        Assert.Equal(Sutazai.TestSupport.DeterministicModelSpec.DefaultExpectations.ChatReply, await ChatThroughGatewayAsync());
    }

    /// <summary>
    /// kill -9 of the node that is writing a reply, with no restart: the other node sees the dead node's heartbeats
    /// stop and marks the reply interrupted (never "generating" forever), and the next message of that conversation is
    /// answered through the other node. The model holds its first stream after one chunk, so the reply cannot finish
    /// before the kill.
    /// </summary>
    [Fact]
    public async Task ANodeKilledMidReply_LeavesTheReplyInterrupted_AndTheNextMessageWorksThroughTheOtherNode()
    {
        await using var model = await Sutazai.Inference.Tests.Fakes.FakeOpenAIServer.StartNewAsync();
        model.HoldAfterFirstChunk = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            var cookies = new CookieContainer();
            var openai = new Dictionary<string, string>
            {
                ["Sutazai__Inference__Provider"] = "openai",
                ["Sutazai__Inference__OpenAI__BaseUrl"] = model.BaseUrl,
            };
            var (_, nodeA) = await StartNodeAsync(cookies, "all", openai);
            var (_, nodeB) = await StartNodeAsync(cookies, "all", openai);
            using var _ = nodeA;
            using var __ = nodeB;
            var (_, tokens) = await Accounts.RegisterAndLoginAsync(nodeA);
            foreach (var node in new[] { nodeA, nodeB }) node.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", tokens.AccessToken);
            var created = await nodeA.PostAsJsonAsync("/api/v1/conversations", new { model = Sutazai.Inference.Tests.Fakes.FakeOpenAIServer.Qwen });
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            var conversationId = (await created.ReadJsonAsync()).GetProperty("id").GetGuid();

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/conversations/{conversationId}/messages")
            {
                Content = JsonContent.Create(new { content = "Tell me everything." }),
            };
            request.Headers.Accept.ParseAdd("text/event-stream");
            using var response = await nodeA.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await using var stream = await response.Content.ReadAsStreamAsync(timeout.Token);
            using var reader = new StreamReader(stream);
            var assistantId = Guid.Empty;
            while (assistantId == Guid.Empty && await reader.ReadLineAsync(timeout.Token) is { } line)
            {
                if (line.StartsWith("data: ", StringComparison.Ordinal) && line.Contains("\"assistantMessageId\"", StringComparison.Ordinal))
                    assistantId = System.Text.Json.JsonDocument.Parse(line[6..]).RootElement.GetProperty("assistantMessageId").GetGuid();
            }
            Assert.NotEqual(Guid.Empty, assistantId);
            while (model.ChunksSent == 0) await Task.Delay(50, timeout.Token);

            _processes[0].Kill(entireProcessTree: true);
            await _processes[0].WaitForExitAsync();

            // Node B settles it once A counts as gone (heartbeat 1 s, timeout 4 s here; 10 s and 30 s by default).
            System.Text.Json.JsonElement reply = default;
            var deadline = DateTime.UtcNow.AddSeconds(60);
            do
            {
                await Task.Delay(250);
                var messages = await (await nodeB.GetAsync($"/api/v1/conversations/{conversationId}/messages")).ReadJsonAsync();
                reply = messages.EnumerateArray().Single(m => m.GetProperty("id").GetGuid() == assistantId);
            }
            while (reply.GetProperty("status").GetString() != MessageStatus.Interrupted && DateTime.UtcNow < deadline);
            Assert.Equal(MessageStatus.Interrupted, reply.GetProperty("status").GetString());
            Assert.Equal(Sutazai.Server.Conversations.InterruptedReplies.Detail, reply.GetProperty("error").GetString());

            // The model holds only its first stream: the next message is answered in full, through B.
            var next = await nodeB.PostAsJsonAsync($"/api/v1/conversations/{conversationId}/messages", new { content = "Again, please." });
            Assert.Equal(HttpStatusCode.Created, next.StatusCode);
            var answer = (await next.ReadJsonAsync()).GetProperty("assistantMessage");
            Assert.Equal("complete", answer.GetProperty("status").GetString());
            Assert.Equal(string.Concat(Sutazai.Inference.Tests.Fakes.FakeOpenAIServer.ChatTokens), answer.GetProperty("content").GetString());
        }
        finally
        {
            model.HoldAfterFirstChunk?.TrySetResult();
        }
    }

    public Task DisposeAsync()
    {
        foreach (var process in _processes)
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.WaitForExit();
            process.Dispose();
        }
        TestApp.DropPostgresDatabase(_database);
        foreach (var dir in _dataDirs)
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
                // a killed node's files may still be closing
            }
        }
        return Task.CompletedTask;
    }
}

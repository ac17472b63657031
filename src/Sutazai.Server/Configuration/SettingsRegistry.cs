using System.Text;

namespace Sutazai.Server.Configuration;

/// <summary>One setting: its configuration key, its default (null = unset) and what it does.</summary>
public sealed record Setting(string Key, string? Default, string Description)
{
    /// <summary>The environment variable that sets it (ASP.NET Core maps <c>__</c> to <c>:</c>).</summary>
    public string EnvironmentVariable => Key.Replace(":", "__", StringComparison.Ordinal);
}

/// <summary>
/// Every setting SutazAI reads, declared once. The defaults are fed into configuration as its lowest layer, typed
/// options bind from there and are validated at start-up, and docs/configuration.md is generated from this list
/// (<c>dotnet run --project src/Sutazai.Server -- config docs</c>).
/// </summary>
public static class SettingsRegistry
{
    public static readonly IReadOnlyList<Setting> All =
    [
        new("Sutazai:DataDir", "./data", "Folder for everything the server writes: database, signing keys, mail outbox, models. Relative paths are resolved against the working directory."),
        new("Sutazai:PublicUrl", "http://localhost:5000", "Base URL users reach the server at; used in links inside e-mails."),
        new("Sutazai:Role", "all", "What this process does: `all` (API + task worker), `api` (API only, no task worker) or `worker` (task worker only: no routes but /health, /health/ready and /metrics; never migrates, waits until the schema is current)."),
        new("Sutazai:Storage:Content", "auto", "Where uploaded originals and finished runs' workspaces are kept so every node can read them: `filesystem` (the data dir; one node), `database` (the shared database, in 1 MiB parts; several nodes) or `auto` (database on PostgreSQL, filesystem on SQLite)."),
        new("Sutazai:Cluster:HeartbeatSeconds", "10", "How often a node writes its heartbeat (role, version, address, active generations, queue depth) to the database's node registry (`GET /api/v1/admin/nodes`)."),
        new("Sutazai:Cluster:NodeTimeoutSeconds", "30", "A node whose last heartbeat is older than this is listed as `gone` (it died or lost the database); one that stopped cleanly is `stopped`."),
        new("Sutazai:Cluster:AdvertisedUrl", "", "The address other nodes and operators reach this node at, shown in the node registry. Empty: the addresses the server listens on."),

        new("Sutazai:Database:Provider", "sqlite", "Relational store: `sqlite` (a file in the data dir) or `postgres`."),
        new("Sutazai:Database:ConnectionString", null, "Connection string. Empty with `sqlite` means `<DataDir>/sutazai.db`; required with `postgres`."),
        new("Sutazai:Database:SqliteBusyTimeoutMs", "5000", "How long a SQLite writer waits for a lock before failing (PRAGMA busy_timeout)."),
        new("Sutazai:Database:Pool:MinSize", "0", "PostgreSQL: connections kept open when idle (Npgsql `Minimum Pool Size`)."),
        new("Sutazai:Database:Pool:MaxSize", "30", "PostgreSQL: most connections at once (the original SutazAI: pool 10 + overflow 20)."),
        new("Sutazai:Database:Pool:TimeoutSeconds", "30", "PostgreSQL: seconds to wait for a free pooled connection before failing."),
        new("Sutazai:Database:Pool:ConnectionLifetimeSeconds", "1800", "PostgreSQL: a pooled connection older than this is closed instead of reused (recycle)."),
        new("Sutazai:Database:Pool:IdleLifetimeSeconds", "300", "PostgreSQL: idle connections above MinSize are closed after this many seconds."),
        new("Sutazai:Database:Pool:KeepAliveSeconds", "30", "PostgreSQL: keepalive query interval on idle connections, so dead connections are found before use (pre-ping). 0 disables."),
        new("Sutazai:Database:CommandTimeoutSeconds", "30", "Seconds before a database command is cancelled."),

        new("Sutazai:Auth:Issuer", "sutazai", "JWT `iss` claim issued and required."),
        new("Sutazai:Auth:Audience", "sutazai-api", "JWT `aud` claim issued and required."),
        new("Sutazai:Auth:AccessTokenLifetime", "00:15:00", "Lifetime of a bearer access token (hh:mm:ss)."),
        new("Sutazai:Auth:RefreshTokenLifetime", "7.00:00:00", "Lifetime of a refresh token (d.hh:mm:ss)."),
        new("Sutazai:Auth:MaxFailedAttempts", "5", "Consecutive wrong passwords that lock an account."),
        new("Sutazai:Auth:LockoutDuration", "00:15:00", "How long a locked account stays locked."),
        new("Sutazai:Auth:PasswordResetTokenLifetime", "01:00:00", "Lifetime of password-reset and e-mail verification tokens."),
        new("Sutazai:Auth:ClockSkewSeconds", "30", "Tolerance when checking token expiry."),
        new("Sutazai:Auth:SigningKey", null, "Base64 HS256 key (at least 32 bytes, e.g. `openssl rand -base64 64`) that signs and checks access tokens. Empty: the key in the database, made by the first node that starts and shared by every node. Masked by `config list`."),
        new("Sutazai:Auth:CookieLifetime", "7.00:00:00", "How long the web UI's sign-in cookie lasts without use (sliding; d.hh:mm:ss)."),

        new("Sutazai:RateLimits:AuthPerMinute", "60", "Requests per minute per client address to login, register, refresh and password reset (429 beyond). With `Sutazai:Redis:Connection` the minute is counted once for all nodes (falling back to each node's own count while Redis is unreachable)."),

        new("Sutazai:RateLimits:ConcurrentGenerationsPerUser", "4", "Generations one user may run at once on a node, across `/api/v1/generate`, `/v1/*`, conversation replies, `/ws/chat` and `/ws/jarvis`; beyond it 429 with `Retry-After` (a socket gets an error frame `rate_limited`). An agent's model step waits for a free slot instead. Other users are unaffected."),
        new("Sutazai:RateLimits:ExpensivePerMinute", "120", "Requests per minute per user to expensive routes: generation (`/api/v1/generate`, `/v1/chat/completions`, `/v1/completions`, conversation messages and regenerations), embeddings, uploads, URL ingestion and agent runs (429 with `Retry-After` beyond). Shared by all nodes with `Sutazai:Redis:Connection`."),
        new("Sutazai:Quotas:StorageBytesPerUser", "1073741824", "Bytes of stored documents (uploads and fetched URLs) one user may hold; an upload past it gets 507 Insufficient Storage naming the usage. 0 means no limit. Administrators see usage per user at `GET /api/v1/admin/usage`."),

        new("Sutazai:Http:MaxRequestBodyBytes", "10485760", "Largest request body accepted (413 beyond). Upload endpoints set their own limit."),
        new("Sutazai:Http:CorsOrigins", "", "Comma-separated origins allowed by CORS; empty allows none (same-origin UI needs none)."),
        new("Sutazai:Http:KnownProxies", "", "Comma-separated IPs or CIDR ranges of reverse proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed (client address for rate limits and logs, https scheme). Empty: the headers are ignored, so a client cannot spoof its address."),
        new("Sutazai:Http:MetricsUrl", "", "A separate management address for `/metrics` (e.g. `http://0.0.0.0:9464`), added to the addresses the server listens on: there `/metrics` is the only route, and the main addresses answer 404 for it. Empty serves `/metrics` on the main addresses."),
        new("Sutazai:WebSockets:CredentialRecheckSeconds", "30", "How often every open `/ws/*` socket checks its credential again (it is also checked on every frame that starts work): a deactivated account, a password change or reset, \"log out everywhere\" or an expired token or cookie closes the socket with 1008."),

        new("Sutazai:Inference:Provider", "llamacpp", "Provider used when a request names no model: `llamacpp` (in-process), `ollama` or `openai`."),
        new("Sutazai:Inference:DefaultModel", "", "Model id used when a request names none; empty picks the default provider's first model."),
        new("Sutazai:Inference:MaxOutputTokensLimit", "32768", "Largest `maxTokens` a request may ask for (422 beyond)."),
        new("Sutazai:Inference:MaxPromptChars", "200000", "Longest prompt (characters: `prompt`, or all `messages` together) of `/api/v1/generate`, `/v1/chat/completions` and `/v1/completions` (422, or 400 on `/v1`, naming the field), checked before tokenizing, so an oversized prompt is refused in milliseconds. A prompt within it but over the model's context gets 400 with both token counts."),
        new("Sutazai:Inference:MaxEmbeddingInputChars", "32768", "Longest single embedding input (characters) of `/v1/embeddings`, checked before embedding (400 naming `input[i]`)."),
        new("Sutazai:Inference:MaxEmbeddingInputs", "2048", "Most strings one `/v1/embeddings` request may embed (400 naming `input` beyond)."),
        new("Sutazai:Inference:DefaultMaxOutputTokens", "1024", "Tokens generated when a request gives no `maxTokens`."),
        new("Sutazai:Inference:LlamaCpp:ModelsDir", "", "Folder of GGUF models; empty means `<DataDir>/models`."),
        new("Sutazai:Inference:LlamaCpp:Threads", "0", "CPU threads llama.cpp decodes with; 0 uses every core."),
        new("Sutazai:Inference:LlamaCpp:ContextSize", "8192", "KV-cache cells of a loaded model, shared by all its conversations (unified KV cache)."),
        new("Sutazai:Inference:LlamaCpp:ParallelSlots", "4", "Requests decoded together in one batch per model (continuous batching)."),
        new("Sutazai:Inference:LlamaCpp:PrefixCacheEntries", "4", "Finished conversations kept in the KV cache so the next turn re-reads only new tokens."),
        new("Sutazai:Inference:LlamaCpp:BatchSize", "512", "Prompt tokens per llama_decode call."),
        new("Sutazai:Inference:LlamaCpp:KeepAlive", "00:05:00", "Idle time after which a loaded model is unloaded; negative (e.g. `-00:00:01`) keeps it loaded."),
        new("Sutazai:Inference:LlamaCpp:FlashAttention", "true", "Use llama.cpp's flash-attention kernels. On CPU they skip the masked cells of the shared KV cache, so conversations kept for prefix reuse do not slow running ones (measured: 4 streams 13.7 → 11.6 ms per step with 1,500 kept tokens; docs/performance.md)."),
        new("Sutazai:Inference:LlamaCpp:MaxMemoryBytes", "0", "Memory budget for loaded models; 0 uses what the OS reports available. A model whose estimate exceeds it is refused with a clear error."),
        new("Sutazai:Inference:Ollama:Url", "", "Ollama server URL (e.g. `http://localhost:11434`); empty disables it unless auto-detected. An address an administrator connects at run time (`PUT /api/v1/admin/ollama`, web UI) takes precedence."),
        new("Sutazai:Inference:Ollama:AutoDetect", "true", "At start-up, when no Ollama URL is set, use http://localhost:11434 if an Ollama answers there."),
        new("Sutazai:Inference:Ollama:Timeout", "00:05:00", "Timeout of one Ollama request."),
        new("Sutazai:Inference:OpenAI:BaseUrl", "", "Base URL of an OpenAI-compatible API (vLLM, llama-server, OpenAI), e.g. `http://localhost:8000/v1`; empty disables it."),
        new("Sutazai:Inference:OpenAI:ApiKey", "", "API key sent as a bearer token to the OpenAI-compatible server."),
        new("Sutazai:Inference:OpenAI:Model", "", "Model the openai provider uses when a caller gives it no model id (listing always asks the server's /models)."),
        new("Sutazai:Inference:Pull:HuggingFaceBaseUrl", "https://huggingface.co", "Where `hf:owner/repo/file.gguf` references are downloaded from."),
        new("Sutazai:Inference:Pull:HuggingFaceToken", null, "Hugging Face access token for gated or private repositories (`hf:` references and https URLs on the hub's host); when unset, the `HF_TOKEN` environment variable is used. Sent only to the hub's host, never to the CDN a download redirects to; masked by `config list`."),
        new("Sutazai:Inference:Pull:MaxConcurrent", "2", "Model downloads running at once; more wait in the queue."),

        new("Sutazai:Conversations:MaxMessageChars", "100000", "Longest message (characters) sent to a conversation, over `/ws/chat` or in an import (422 naming `content` beyond), checked before anything is tokenized."),
        new("Sutazai:Conversations:MaxImportMessages", "10000", "Most messages one `POST /api/v1/conversations/import` may hold (422 naming `messages` beyond); it also bounds the depth of the imported tree."),

        new("Sutazai:Agents:LeaseSeconds", "60", "How long a worker's claim on an agent run lasts without renewal; a crashed worker's run is resumed by another after it."),
        new("Sutazai:Agents:JsonToolCallProviders", "llamacpp", "Comma-separated providers whose models get the documented JSON tool-call format (docs/agents.md) instead of native tool calling."),
        new("Sutazai:Agents:CoderRepositories", "", "Git repositories the coder agent may edit (admin's allowlist), separated by `;`. Each entry is an absolute path (admins only), `path|alice,bob` (admins and those user names) or `path|*` (everyone); a run naming another repository gets 422 on `options.repository`."),
        new("Sutazai:Agents:MaxInputChars", "32000", "Longest run input accepted (422 beyond)."),
        new("Sutazai:Agents:ToolFamiliesByRole:User", "*", "Tool families (comma-separated, e.g. `files,knowledge,calculator`) a non-admin's runs may use; `*` is every family. A run of an agent needing another family is refused at start with 403 naming it. Admins may use every family."),
        new("Sutazai:Agents:EngineerMaxBuildAttempts", "3", "How many times the engineer agent runs the build command its plan names (through shell_run, after approval), feeding the errors back to the model between attempts, before the run fails."),

        new("Sutazai:Knowledge:MaxUploadBytes", "104857600", "Largest file accepted by POST /api/v1/documents (413 beyond)."),
        new("Sutazai:Knowledge:ChunkTokens", "512", "Target size of a document chunk, in tokens."),
        new("Sutazai:Knowledge:ChunkOverlapTokens", "64", "Tokens shared by neighbouring chunks."),
        new("Sutazai:Knowledge:IndexSyncInterval", "00:00:05", "How often each node brings its embedded vector index (USearch) up to date with the database, the source of truth: vectors of chunks another node embedded are added, those of deleted chunks removed (hh:mm:ss). A node also syncs at once after its own uploads and deletions."),
        new("Sutazai:Knowledge:VectorStore", "usearch", "Vector index: `usearch` (HNSW files in `<DataDir>/vectors` and `<DataDir>/raw-vectors`), `pgvector` or `qdrant` (not tested against a live Qdrant here)."),
        new("Sutazai:Knowledge:PgVectorConnectionString", "", "PostgreSQL (with the pgvector extension) connection string for `VectorStore=pgvector`."),
        new("Sutazai:Knowledge:Qdrant:Url", "", "Qdrant gRPC endpoint for `VectorStore=qdrant`, e.g. `http://localhost:6334`."),
        new("Sutazai:Knowledge:Qdrant:ApiKey", "", "Qdrant API key for `VectorStore=qdrant` (empty: none)."),
        new("Sutazai:Knowledge:UrlAllowlist", "", "Comma-separated hosts or CIDR networks URL ingestion may fetch from although they are loopback/private (the SSRF guard blocks them otherwise)."),
        new("Sutazai:Knowledge:Graph:Enabled", "true", "Extract entities and relations into the knowledge graph while ingesting documents."),
        new("Sutazai:Knowledge:Graph:UseModel", "false", "Also ask a chat model for entities and relations (strict JSON, merged with the rule-based extraction; a bad answer falls back to the rules)."),
        new("Sutazai:Knowledge:Graph:Model", "", "Model for `Graph:UseModel`; empty uses the default model."),
        new("Sutazai:Knowledge:Graph:MaxFacts", "8", "Knowledge-graph facts about entities named in the question added to a grounded prompt (0 disables)."),
        new("Sutazai:Knowledge:EmbeddingCacheEntries", "10000", "Embeddings kept in memory by content hash, so repeated text is not embedded twice (0 disables)."),

        new("Sutazai:Agents:Sandbox:Mode", "bubblewrap", "How agent commands (shell_run, the engineer's builds) are isolated: `bubblewrap` (an OS sandbox; commands are refused when it is unavailable) or `none` (UNSAFE: commands run as the server's user and can read its keys and database; single-user machines only; warned at start-up)."),
        new("Sutazai:Agents:Sandbox:BwrapPath", "/usr/bin/bwrap", "The bubblewrap binary (Debian `bubblewrap`)."),
        new("Sutazai:Agents:Sandbox:PrlimitPath", "/usr/bin/prlimit", "The prlimit binary (util-linux) that sets the kernel limits inside the sandbox."),
        new("Sutazai:Agents:Sandbox:Network", "", "Comma-separated agent ids (e.g. `engineer`) or tool families (`shell`) whose commands get network; `*` = all; empty = no network for anyone."),
        new("Sutazai:Agents:Sandbox:NetworkAllowHostLoopback", "false", "With network: whether the sandbox reaches the host's loopback at 10.0.2.2 (off: refused)."),
        new("Sutazai:Agents:Sandbox:NetworkAllowedPrivateRanges", "", "With network: comma-separated CIDRs of private ranges the sandbox may still reach (loopback, private, link-local and reserved ranges are refused otherwise)."),
        new("Sutazai:Agents:Sandbox:Slirp4netnsPath", "/usr/bin/slirp4netns", "With network: the slirp4netns binary that gives the sandbox its own user-mode network."),
        new("Sutazai:Agents:Sandbox:NsenterPath", "/usr/bin/nsenter", "With network: the nsenter binary (util-linux) used to set the sandbox's firewall rules."),
        new("Sutazai:Agents:Sandbox:NftPath", "/usr/sbin/nft", "With network: the nft binary (nftables) for the sandbox's firewall rules."),
        new("Sutazai:Agents:Sandbox:UnsharePath", "/usr/bin/unshare", "With network: the unshare binary (util-linux) that makes the sandbox's host-owned network namespace."),
        new("Sutazai:Agents:Sandbox:IpPath", "/usr/sbin/ip", "With network: the ip binary (iproute2) that brings the sandbox's loopback up."),
        new("Sutazai:Agents:Sandbox:CpuSeconds", "120", "CPU seconds one command may use (RLIMIT_CPU); beyond it the command is stopped with `limitExceeded: cpu-time`."),
        new("Sutazai:Agents:Sandbox:MemoryBytes", "4294967296", "Address space of each process in the sandbox (RLIMIT_AS); allocations beyond it fail (`limitExceeded: memory`)."),
        new("Sutazai:Agents:Sandbox:MaxProcesses", "256", "Processes one command may have at once (RLIMIT_NPROC, and a pids cgroup when the server runs as root)."),
        new("Sutazai:Agents:Sandbox:MaxFileBytes", "1073741824", "Largest file a command may write (RLIMIT_FSIZE; `limitExceeded: file-size`)."),
        new("Sutazai:Agents:Sandbox:TmpBytes", "268435456", "Size of the sandbox's private /tmp (a tmpfs)."),
        new("Sutazai:Agents:Sandbox:WorkspaceQuotaBytes", "2147483648", "Bytes one run's workspace may hold; over it the command's result says `limitExceeded: workspace-disk` and further commands are refused."),
        new("Sutazai:Agents:Sandbox:UserQuotaBytes", "10737418240", "Bytes all of one user's run workspaces may hold together; over it commands are refused until old runs are deleted."),

        new("Sutazai:Agents:Tools:ShellTimeoutSeconds", "30", "Seconds an agent's shell_run command may run when the model asks for no timeout; at the timeout its whole process group is killed."),
        new("Sutazai:Agents:Tools:ShellMaxTimeoutSeconds", "300", "Largest timeout (seconds) a model may ask shell_run for."),
        new("Sutazai:Agents:Tools:OutputCapBytes", "65536", "Bytes kept of each of a shell command's stdout and stderr, and of a git diff; the rest is dropped and the result marked truncated."),
        new("Sutazai:Agents:Tools:FileReadMaxBytes", "1048576", "Largest `maxBytes` files_read accepts (its default is 65536)."),
        new("Sutazai:Agents:Tools:FileWriteMaxBytes", "10485760", "Largest content (UTF-8 bytes) files_write accepts."),
        new("Sutazai:Agents:Tools:FileListMaxEntries", "1000", "Entries files_list returns at most (the result says when more exist)."),
        new("Sutazai:Agents:Tools:WebFetchDefaultChars", "20000", "Characters of readable text web_fetch returns when the model gives no `maxChars`."),
        new("Sutazai:Agents:Tools:WebFetchMaxChars", "200000", "Largest `maxChars` web_fetch accepts."),
        new("Sutazai:Agents:Tools:WebFetchMaxBytes", "10485760", "Largest response body web_fetch downloads (it passes the same SSRF guard and allowlist as URL ingestion, `Sutazai:Knowledge:UrlAllowlist`)."),
        new("Sutazai:Agents:Tools:WebFetchTimeoutSeconds", "30", "Seconds web_fetch waits for a page, redirects included."),
        new("Sutazai:Redis:Connection", "", "Redis for live events between nodes (StackExchange.Redis configuration string, e.g. `redis1:6379,password=…`): agent-run steps and tokens reach `/ws/jarvis` sockets and run streams on every node, and chat replies stream to (and can be stopped from) `/ws/chat` sockets and pages on every node, as they happen. Empty keeps events in the process (one node; other nodes then follow runs by re-reading the store once a second)."),
        new("Sutazai:Redis:ChannelPrefix", "sutazai", "Prefix of the Redis pub/sub channel names (`<prefix>:run-events`, `<prefix>:reply-events`, `<prefix>:reply-stop`), so several deployments can share one Redis."),
        new("Sutazai:Tasks:Transport", "database", "Task queue transport: `database` (a durable queue in the relational store) or `rabbitmq`."),
        new("Sutazai:Tasks:Concurrency", "4", "Tasks one worker process handles at once."),
        new("Sutazai:Tasks:MaxAttempts", "5", "Failed attempts after which a task is dead-lettered (also the limit on redeliveries after crashes, database transport)."),
        new("Sutazai:Tasks:RetryBaseDelay", "00:00:05", "Backoff before the first retry; doubles with each further attempt."),
        new("Sutazai:Tasks:RetryMaxDelay", "00:05:00", "Longest backoff between attempts."),
        new("Sutazai:Tasks:LeaseDuration", "00:01:00", "Database transport: how long a claimed task stays leased without renewal (renewed every third of it while the handler runs); a crashed worker's tasks are delivered again after it."),
        new("Sutazai:Tasks:PollInterval", "00:00:02", "Database transport: how often an idle worker looks for tasks enqueued by other nodes or retries that became due (local enqueues wake it at once)."),
        new("Sutazai:Tasks:ShutdownGrace", "00:00:10", "At shutdown, how long the worker waits for running handlers (they are cancelled) before abandoning them to redelivery."),
        new("Sutazai:Tasks:DoneRetention", "1.00:00:00", "Database transport: how long finished tasks stay in `task_queue` before they are deleted."),
        new("Sutazai:Tasks:RabbitMq:Url", "", "RabbitMQ broker URL (`amqp://user:password@host:5672/vhost`); required with `Transport=rabbitmq`."),
        new("Sutazai:Tasks:RabbitMq:Prefetch", "16", "RabbitMQ: unacknowledged deliveries the broker sends one worker ahead (basic.qos)."),

        new("Sutazai:Mail:SmtpHost", "", "SMTP server. Empty writes every message as an .eml file to `<DataDir>/outbox/` instead."),
        new("Sutazai:Mail:SmtpPort", "587", "SMTP port."),
        new("Sutazai:Mail:UseStartTls", "true", "Require STARTTLS on the SMTP connection."),
        new("Sutazai:Mail:Username", "", "SMTP user name (empty: no authentication)."),
        new("Sutazai:Mail:Password", "", "SMTP password."),
        new("Sutazai:Mail:From", "SutazAI <no-reply@sutazai.local>", "Sender of outgoing mail."),
    ];

    public static IEnumerable<KeyValuePair<string, string?>> Defaults =>
        All.Where(s => s.Default is not null).Select(s => new KeyValuePair<string, string?>(s.Key, s.Default));

    /// <summary>Adds every default as the lowest configuration layer, so any other source overrides it.</summary>
    public static void AddDefaults(IConfigurationBuilder configuration)
    {
        var source = new Microsoft.Extensions.Configuration.Memory.MemoryConfigurationSource { InitialData = Defaults };
        configuration.Sources.Insert(0, source);
    }

    public static string ToMarkdown()
    {
        var md = new StringBuilder();
        md.Append("# Configuration\n\n");
        md.Append("Generated from `src/Sutazai.Server/Configuration/SettingsRegistry.cs` by\n");
        md.Append("`dotnet run --project src/Sutazai.Server -- config docs > docs/configuration.md`; a test fails when it drifts.\n\n");
        md.Append("Set any value in `appsettings.json`, as an environment variable (`:` becomes `__`), or on the command line\n");
        md.Append("(`--Sutazai:Database:Provider=postgres`). Values are validated at start-up; a bad value stops the server with a message.\n\n");
        md.Append("| Setting | Environment variable | Default | Description |\n|---|---|---|---|\n");
        foreach (var s in All)
        {
            var def = s.Default is null ? "(unset)" : s.Default.Length == 0 ? "(empty)" : $"`{s.Default}`";
            md.Append(FormattableString.Invariant($"| `{s.Key}` | `{s.EnvironmentVariable}` | {def} | {s.Description} |\n"));
        }
        return md.ToString();
    }
}

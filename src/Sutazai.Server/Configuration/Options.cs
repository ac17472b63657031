using System.ComponentModel.DataAnnotations;

namespace Sutazai.Server.Configuration;

public sealed class SutazaiOptions
{
    public const string Section = "Sutazai";

    [Required(AllowEmptyStrings = false)]
    public string DataDir { get; set; } = "";

    [Required, Url]
    public string PublicUrl { get; set; } = "";

    public bool HasHttpsPublicUrl => PublicUrl.StartsWith("https://", StringComparison.OrdinalIgnoreCase);

    /// <summary><c>all</c>, <c>api</c> or <c>worker</c> (see <see cref="Hosting.ServerRole"/>).</summary>
    [Required, RegularExpression("^(?i)(all|api|worker)$", ErrorMessage = "Sutazai:Role must be 'all', 'api' or 'worker'.")]
    public string Role { get; set; } = "";

    /// <summary>The data directory as an absolute path.</summary>
    public string DataPath => Path.GetFullPath(DataDir);
}

public sealed class StorageOptions
{
    public const string Section = "Sutazai:Storage";

    /// <summary><c>auto</c>, <c>filesystem</c> or <c>database</c>.</summary>
    [Required, RegularExpression("^(?i)(auto|filesystem|database)$", ErrorMessage = "Sutazai:Storage:Content must be 'auto', 'filesystem' or 'database'.")]
    public string Content { get; set; } = "";

    /// <summary><c>auto</c> means the database on PostgreSQL (several nodes share it) and the data dir on SQLite (one node).</summary>
    public bool UsesDatabase(DatabaseOptions database) => Content.ToLowerInvariant() switch
    {
        "database" => true,
        "filesystem" => false,
        _ => database.IsPostgres,
    };
}

public sealed class ClusterOptions
{
    public const string Section = "Sutazai:Cluster";

    [Range(1, 3600)]
    public int HeartbeatSeconds { get; set; }

    [Range(2, 86_400)]
    public int NodeTimeoutSeconds { get; set; }

    public string? AdvertisedUrl { get; set; }
}

public sealed class DatabaseOptions : IValidatableObject
{
    public const string Section = "Sutazai:Database";

    public string Provider { get; set; } = "";

    public string? ConnectionString { get; set; }

    [Range(0, 600_000)]
    public int SqliteBusyTimeoutMs { get; set; }

    [Range(1, 3600)]
    public int CommandTimeoutSeconds { get; set; }

    public PoolOptions Pool { get; set; } = new();

    public bool IsPostgres => string.Equals(Provider, "postgres", StringComparison.OrdinalIgnoreCase);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (!string.Equals(Provider, "sqlite", StringComparison.OrdinalIgnoreCase) && !IsPostgres)
            yield return new ValidationResult($"Sutazai:Database:Provider must be 'sqlite' or 'postgres', not '{Provider}'.", [nameof(Provider)]);
        if (IsPostgres && string.IsNullOrWhiteSpace(ConnectionString))
            yield return new ValidationResult("Sutazai:Database:ConnectionString is required when Provider is 'postgres'.", [nameof(ConnectionString)]);
        var poolErrors = new List<ValidationResult>();
        Validator.TryValidateObject(Pool, new ValidationContext(Pool), poolErrors, validateAllProperties: true);
        foreach (var error in poolErrors)
            yield return new ValidationResult($"Sutazai:Database:Pool: {error.ErrorMessage}", error.MemberNames);
        if (Pool.MinSize > Pool.MaxSize)
            yield return new ValidationResult("Sutazai:Database:Pool:MinSize must not exceed MaxSize.", [nameof(Pool)]);
    }
}

public sealed class PoolOptions
{
    [Range(0, 1000)]
    public int MinSize { get; set; }

    [Range(1, 1000)]
    public int MaxSize { get; set; }

    [Range(1, 600)]
    public int TimeoutSeconds { get; set; }

    [Range(0, 86_400)]
    public int ConnectionLifetimeSeconds { get; set; }

    [Range(1, 86_400)]
    public int IdleLifetimeSeconds { get; set; }

    [Range(0, 3600)]
    public int KeepAliveSeconds { get; set; }
}

public sealed class AuthOptions : IValidatableObject
{
    private static bool IsKey(string base64)
    {
        var buffer = new byte[base64.Length];
        return Convert.TryFromBase64String(base64.Trim(), buffer, out var length) && length >= 32;
    }

    public const string Section = "Sutazai:Auth";

    [Required(AllowEmptyStrings = false)]
    public string Issuer { get; set; } = "";

    [Required(AllowEmptyStrings = false)]
    public string Audience { get; set; } = "";

    public TimeSpan AccessTokenLifetime { get; set; }

    public TimeSpan RefreshTokenLifetime { get; set; }

    [Range(1, 100)]
    public int MaxFailedAttempts { get; set; }

    public TimeSpan LockoutDuration { get; set; }

    public TimeSpan PasswordResetTokenLifetime { get; set; }

    [Range(0, 600)]
    public int ClockSkewSeconds { get; set; }

    public TimeSpan CookieLifetime { get; set; }

    /// <summary>Base64 HS256 key (≥ 32 bytes) from configuration; empty keeps the one in the database.</summary>
    public string? SigningKey { get; set; }

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (!string.IsNullOrEmpty(SigningKey) && !IsKey(SigningKey))
            yield return new ValidationResult("Sutazai:Auth:SigningKey must be base64 of at least 32 bytes (e.g. `openssl rand -base64 64`).", [nameof(SigningKey)]);
        if (AccessTokenLifetime <= TimeSpan.Zero) yield return Positive(nameof(AccessTokenLifetime));
        if (RefreshTokenLifetime <= TimeSpan.Zero) yield return Positive(nameof(RefreshTokenLifetime));
        if (LockoutDuration <= TimeSpan.Zero) yield return Positive(nameof(LockoutDuration));
        if (PasswordResetTokenLifetime <= TimeSpan.Zero) yield return Positive(nameof(PasswordResetTokenLifetime));
        if (CookieLifetime <= TimeSpan.Zero) yield return Positive(nameof(CookieLifetime));
    }

    private static ValidationResult Positive(string name) =>
        new($"Sutazai:Auth:{name} must be a positive time span.", [name]);
}

public sealed class RateLimitOptions
{
    public const string Section = "Sutazai:RateLimits";

    [Range(1, 1_000_000)]
    public int AuthPerMinute { get; set; }

    [Range(1, 10_000)]
    public int ConcurrentGenerationsPerUser { get; set; }

    [Range(1, 1_000_000)]
    public int ExpensivePerMinute { get; set; }
}

public sealed class QuotaOptions
{
    public const string Section = "Sutazai:Quotas";

    /// <summary>Bytes of stored documents one user may hold; 0 means no limit.</summary>
    [Range(0, long.MaxValue)]
    public long StorageBytesPerUser { get; set; }
}

public sealed class HttpOptions : IValidatableObject
{
    public const string Section = "Sutazai:Http";

    [Range(1024, long.MaxValue)]
    public long MaxRequestBodyBytes { get; set; }

    public string CorsOrigins { get; set; } = "";

    public string[] CorsOriginList =>
        CorsOrigins.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public string KnownProxies { get; set; } = "";

    /// <summary>See <see cref="Hosting.MetricsPort"/>.</summary>
    public string MetricsUrl { get; set; } = "";

    public string[] KnownProxyList =>
        KnownProxies.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        foreach (var entry in KnownProxyList)
        {
            var valid = entry.Contains('/', StringComparison.Ordinal) ? System.Net.IPNetwork.TryParse(entry, out _) : System.Net.IPAddress.TryParse(entry, out _);
            if (!valid) yield return new ValidationResult($"Sutazai:Http:KnownProxies: '{entry}' is neither an IP address nor a CIDR range (e.g. 10.0.0.0/8).", [nameof(KnownProxies)]);
        }
        if (MetricsUrl.Length > 0 && !(Uri.TryCreate(MetricsUrl, UriKind.Absolute, out var metrics) && metrics.Scheme == Uri.UriSchemeHttp && metrics.AbsolutePath == "/" && MetricsUrl.Contains($":{metrics.Port}", StringComparison.Ordinal)))
            yield return new ValidationResult($"Sutazai:Http:MetricsUrl: '{MetricsUrl}' must be an http:// address with a port, e.g. http://0.0.0.0:9464.", [nameof(MetricsUrl)]);
    }
}

public sealed class WebSocketSessionOptions
{
    public const string Section = "Sutazai:WebSockets";

    [Range(1, 3600)]
    public int CredentialRecheckSeconds { get; set; }

    public TimeSpan CredentialRecheckInterval => TimeSpan.FromSeconds(CredentialRecheckSeconds);
}

public sealed class MailOptions
{
    public const string Section = "Sutazai:Mail";

    public string SmtpHost { get; set; } = "";

    [Range(1, 65535)]
    public int SmtpPort { get; set; }

    public bool UseStartTls { get; set; }

    public string Username { get; set; } = "";

    public string Password { get; set; } = "";

    [Required(AllowEmptyStrings = false)]
    public string From { get; set; } = "";
}

public static class OptionsRegistration
{
    /// <summary>Feeds the registry's defaults into configuration and binds every options class, validated at start-up.</summary>
    public static WebApplicationBuilder AddSutazaiSettings(this WebApplicationBuilder builder)
    {
        SettingsRegistry.AddDefaults(builder.Configuration);
        Bind<SutazaiOptions>(builder, SutazaiOptions.Section);
        Bind<DatabaseOptions>(builder, DatabaseOptions.Section);
        Bind<ClusterOptions>(builder, ClusterOptions.Section);
        Bind<StorageOptions>(builder, StorageOptions.Section);
        Bind<AuthOptions>(builder, AuthOptions.Section);
        Bind<RateLimitOptions>(builder, RateLimitOptions.Section);
        Bind<HttpOptions>(builder, HttpOptions.Section);
        Bind<QuotaOptions>(builder, QuotaOptions.Section);
        Bind<WebSocketSessionOptions>(builder, WebSocketSessionOptions.Section);
        Bind<MailOptions>(builder, MailOptions.Section);
        return builder;
    }

    private static void Bind<T>(WebApplicationBuilder builder, string section) where T : class =>
        builder.Services.AddOptions<T>().BindConfiguration(section, o => o.ErrorOnUnknownConfiguration = false)
            .ValidateDataAnnotations().ValidateOnStart();

    /// <summary>Reads options straight from configuration, for the few decisions taken while services are registered.</summary>
    public static T Read<T>(this IConfiguration configuration, string section) where T : new()
    {
        var value = new T();
        configuration.GetSection(section).Bind(value);
        return value;
    }
}

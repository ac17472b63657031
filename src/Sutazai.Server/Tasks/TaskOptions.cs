using System.ComponentModel.DataAnnotations;

namespace Sutazai.Server.Tasks;

public sealed class TaskOptions : IValidatableObject
{
    public const string Section = "Sutazai:Tasks";

    /// <summary><c>database</c> (embedded, the default) or <c>rabbitmq</c>.</summary>
    public string Transport { get; set; } = "";

    [Range(1, 256)]
    public int Concurrency { get; set; }

    [Range(1, 100)]
    public int MaxAttempts { get; set; }

    public TimeSpan RetryBaseDelay { get; set; }

    public TimeSpan RetryMaxDelay { get; set; }

    public TimeSpan LeaseDuration { get; set; }

    public TimeSpan PollInterval { get; set; }

    public TimeSpan ShutdownGrace { get; set; }

    public TimeSpan DoneRetention { get; set; }

    public RabbitMqOptions RabbitMq { get; set; } = new();

    public bool IsRabbitMq => string.Equals(Transport, "rabbitmq", StringComparison.OrdinalIgnoreCase);

    /// <summary>Exponential backoff before attempt <paramref name="failedAttempt"/> + 1: base × 2^(n−1), capped.</summary>
    public TimeSpan Backoff(int failedAttempt)
    {
        var factor = Math.Pow(2, Math.Clamp(failedAttempt - 1, 0, 30));
        var delay = TimeSpan.FromMilliseconds(RetryBaseDelay.TotalMilliseconds * factor);
        return delay > RetryMaxDelay ? RetryMaxDelay : delay;
    }

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (!IsRabbitMq && !string.Equals(Transport, "database", StringComparison.OrdinalIgnoreCase))
            yield return new ValidationResult($"Sutazai:Tasks:Transport must be 'database' or 'rabbitmq', not '{Transport}'.", [nameof(Transport)]);
        if (IsRabbitMq && !Uri.TryCreate(RabbitMq.Url, UriKind.Absolute, out var url))
            yield return new ValidationResult("Sutazai:Tasks:RabbitMq:Url must be an amqp:// or amqps:// URL when Transport is 'rabbitmq'.", ["RabbitMq.Url"]);
        else if (IsRabbitMq && Uri.TryCreate(RabbitMq.Url, UriKind.Absolute, out url) && url.Scheme is not ("amqp" or "amqps"))
            yield return new ValidationResult("Sutazai:Tasks:RabbitMq:Url must be an amqp:// or amqps:// URL.", ["RabbitMq.Url"]);
        if (RabbitMq.Prefetch is < 1 or > 65535)
            yield return new ValidationResult("Sutazai:Tasks:RabbitMq:Prefetch must be between 1 and 65535.", ["RabbitMq.Prefetch"]);
        if (RetryBaseDelay <= TimeSpan.Zero) yield return Positive(nameof(RetryBaseDelay));
        if (RetryMaxDelay < RetryBaseDelay)
            yield return new ValidationResult("Sutazai:Tasks:RetryMaxDelay must be at least RetryBaseDelay.", [nameof(RetryMaxDelay)]);
        if (LeaseDuration < TimeSpan.FromMilliseconds(300)) yield return new ValidationResult("Sutazai:Tasks:LeaseDuration must be at least 300 ms.", [nameof(LeaseDuration)]);
        if (PollInterval <= TimeSpan.Zero) yield return Positive(nameof(PollInterval));
        if (ShutdownGrace < TimeSpan.Zero) yield return new ValidationResult("Sutazai:Tasks:ShutdownGrace must not be negative.", [nameof(ShutdownGrace)]);
        if (DoneRetention < TimeSpan.Zero) yield return new ValidationResult("Sutazai:Tasks:DoneRetention must not be negative.", [nameof(DoneRetention)]);
    }

    private static ValidationResult Positive(string name) => new($"Sutazai:Tasks:{name} must be a positive time span.", [name]);
}

public sealed class RabbitMqOptions
{
    public string Url { get; set; } = "";

    public int Prefetch { get; set; }
}

using Sutazai.Data;
using Microsoft.Extensions.Options;
using Sutazai.Server.Configuration;

namespace Sutazai.Server.Hosting;

/// <summary>
/// Before anything else starts: the data dir exists owner-only (0700), so files written into it later are unreadable
/// to other local accounts whatever their own mode (key folders an earlier version left are made owner-only too, until
/// the warm-up moves their keys into the database); and a production server whose mail would only land in the outbox
/// says so.
/// </summary>
public sealed class DataDirGuard(IOptions<SutazaiOptions> app, IOptions<MailOptions> mail, IHostEnvironment environment, ILogger<DataDirGuard> logger)
    : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken)
    {
        var data = app.Value.DataPath;
        PrivateFiles.CreateDirectory(data);
        foreach (var keys in new[] { Path.Combine(data, "keys"), Path.Combine(data, "keys", "data-protection") })
        {
            if (Directory.Exists(keys) && !OperatingSystem.IsWindows()) File.SetUnixFileMode(keys, PrivateFiles.DirectoryMode);
        }
        if (environment.IsProduction() && string.IsNullOrWhiteSpace(mail.Value.SmtpHost))
            logger.LogWarning("No SMTP server is configured (Sutazai:Mail:SmtpHost): password-reset and verification mail is only written to {Outbox}. " +
                "The outbox is meant for development; configure SMTP before opening registration to other people.", Path.Combine(data, "outbox"));
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

using Sutazai.Data;
using MailKit.Net.Smtp;
using MailKit.Security;
using Microsoft.Extensions.Options;
using MimeKit;
using Sutazai.Server.Configuration;
using Sutazai.Server.Hosting;

namespace Sutazai.Server.Identity.Mail;

public interface IMailSender
{
    Task SendAsync(string to, string subject, string textBody, CancellationToken ct);
}

internal static class MailMessages
{
    public static MimeMessage Create(MailOptions options, string to, string subject, string textBody)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(options.From));
        message.To.Add(MailboxAddress.Parse(to));
        message.Subject = subject;
        message.Date = DateTimeOffset.UtcNow;
        message.Body = new TextPart("plain") { Text = textBody };
        return message;
    }
}

/// <summary>
/// Without an SMTP server, every message is written as an .eml file under <c>&lt;DataDir&gt;/outbox/</c> and logged:
/// a real mail drop an operator can open, not a silent success.
/// </summary>
public sealed class OutboxMailSender(IOptions<SutazaiOptions> app, IOptions<MailOptions> mail, ILogger<OutboxMailSender> logger) : IMailSender
{
    public string OutboxPath => Path.Combine(app.Value.DataPath, "outbox");

    public async Task SendAsync(string to, string subject, string textBody, CancellationToken ct)
    {
        PrivateFiles.CreateDirectory(OutboxPath);
        var message = MailMessages.Create(mail.Value, to, subject, textBody);
        var file = Path.Combine(OutboxPath, $"{DateTime.UtcNow:yyyyMMddTHHmmssfff}-{Guid.NewGuid():N}.eml");
        await using (var stream = new FileStream(file, PrivateFiles.CreateOptions()))
        {
            await message.WriteToAsync(stream, ct);
        }
        logger.LogInformation("No SMTP server configured: wrote mail '{Subject}' for {To} to {File}", subject, to, file);
    }
}

public sealed class SmtpMailSender(IOptions<MailOptions> mail, ILogger<SmtpMailSender> logger) : IMailSender
{
    public async Task SendAsync(string to, string subject, string textBody, CancellationToken ct)
    {
        var options = mail.Value;
        var message = MailMessages.Create(options, to, subject, textBody);
        using var client = new SmtpClient();
        await client.ConnectAsync(options.SmtpHost, options.SmtpPort,
            options.UseStartTls ? SecureSocketOptions.StartTls : SecureSocketOptions.StartTlsWhenAvailable, ct);
        if (!string.IsNullOrEmpty(options.Username)) await client.AuthenticateAsync(options.Username, options.Password, ct);
        await client.SendAsync(message, ct);
        await client.DisconnectAsync(quit: true, ct);
        logger.LogInformation("Sent mail '{Subject}' to {To} via {Host}", subject, to, options.SmtpHost);
    }
}

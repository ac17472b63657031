using System.Net;
using System.Net.Sockets;

namespace Sutazai.Knowledge.Web;

/// <summary>
/// Decides which addresses server-side fetches may reach: never loopback, private, link-local (cloud metadata),
/// carrier-grade NAT, multicast, unspecified or reserved ranges — also when written as IPv4-mapped IPv6 — unless an
/// admin allowlisted the host or address. The check runs on the address actually connected to (DNS rebinding cannot
/// slip past it) and again on every redirect.
/// </summary>
public sealed class SsrfGuard(IEnumerable<string> allowlist)
{
    private readonly HashSet<string> _allowedHosts = allowlist.Where(a => !a.Contains('/', StringComparison.Ordinal)).Select(a => a.Trim().ToLowerInvariant()).ToHashSet();
    private readonly List<IPNetwork> _allowedNetworks = allowlist.Where(a => a.Contains('/', StringComparison.Ordinal)).Select(a => IPNetwork.Parse(a.Trim())).ToList();

    /// <summary>The ranges nothing server-side may reach unless allowlisted (also the agent sandbox's network rules).</summary>
    public static readonly IReadOnlyList<IPNetwork> Blocked =
    [
        IPNetwork.Parse("0.0.0.0/8"), IPNetwork.Parse("10.0.0.0/8"), IPNetwork.Parse("100.64.0.0/10"), IPNetwork.Parse("127.0.0.0/8"),
        IPNetwork.Parse("169.254.0.0/16"), IPNetwork.Parse("172.16.0.0/12"), IPNetwork.Parse("192.0.0.0/24"), IPNetwork.Parse("192.0.2.0/24"),
        IPNetwork.Parse("192.168.0.0/16"), IPNetwork.Parse("198.18.0.0/15"), IPNetwork.Parse("198.51.100.0/24"), IPNetwork.Parse("203.0.113.0/24"),
        IPNetwork.Parse("224.0.0.0/4"), IPNetwork.Parse("240.0.0.0/4"),
        IPNetwork.Parse("::/128"), IPNetwork.Parse("::1/128"), IPNetwork.Parse("fc00::/7"), IPNetwork.Parse("fe80::/10"), IPNetwork.Parse("ff00::/8"),
        IPNetwork.Parse("64:ff9b::/96"), IPNetwork.Parse("2001:db8::/32"),
    ];

    public bool IsHostAllowlisted(string host) => _allowedHosts.Contains(host.ToLowerInvariant());

    /// <summary>Why the address may not be reached, or null when it may.</summary>
    public string? Check(IPAddress address, string host)
    {
        if (IsHostAllowlisted(host)) return null;
        var candidate = address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
        if (_allowedNetworks.Any(n => n.Contains(candidate))) return null;
        return Blocked.Any(n => n.Contains(candidate))
            ? $"{host} resolves to {candidate}, a loopback, private, link-local or reserved address; an admin can allow it with Sutazai:Knowledge:UrlAllowlist."
            : null;
    }

    /// <summary>An HTTP handler that validates every address it connects to, follows no redirects itself, and decompresses.</summary>
    public SocketsHttpHandler CreateHandler() => new()
    {
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.All,
        ConnectTimeout = TimeSpan.FromSeconds(10),
        ConnectCallback = async (context, ct) =>
        {
            var host = context.DnsEndPoint.Host;
            var addresses = IPAddress.TryParse(host, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(host, ct);
            var reasons = new List<string>();
            foreach (var address in addresses)
            {
                if (Check(address, host) is { } reason)
                {
                    reasons.Add(reason);
                    continue;
                }
                var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    await socket.ConnectAsync(new IPEndPoint(address, context.DnsEndPoint.Port), ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch (SocketException)
                {
                    socket.Dispose();
                    reasons.Add($"{address}: connection failed");
                }
            }
            throw new BlockedAddressException(reasons.Count == 0 ? $"{host} has no address." : string.Join(" ", reasons.Distinct()));
        },
    };
}

/// <summary>A fetch was refused because of where it would go.</summary>
public sealed class BlockedAddressException(string message) : Exception(message);

using System.Diagnostics.CodeAnalysis;
using System.Text.RegularExpressions;

namespace Sutazai.Inference.Pull;

public enum ModelSourceKind
{
    /// <summary><c>hf:owner/repo/path/file.gguf[@revision]</c>, downloaded from Hugging Face's <c>resolve</c> endpoint.</summary>
    HuggingFace,

    /// <summary>A plain <c>http://</c> or <c>https://</c> URL.</summary>
    Http,

    /// <summary>An Ollama model name (<c>llama3.2:1b</c>); Ollama pulls it itself, the downloader does not.</summary>
    Ollama,
}

/// <summary>
/// A parsed model reference as a user types it for <c>sutazai pull</c>. Parsing never touches the network.
/// </summary>
public sealed partial class ModelSource
{
    public static readonly Uri DefaultHuggingFaceBaseUrl = new("https://huggingface.co");

    public const string DefaultRevision = "main";

    private const string HuggingFacePrefix = "hf:";

    private ModelSource(ModelSourceKind kind, string reference)
    {
        Kind = kind;
        Reference = reference;
    }

    public ModelSourceKind Kind { get; }

    /// <summary>The reference as given, without surrounding whitespace.</summary>
    public string Reference { get; }

    /// <summary>Where to download the file from; null for <see cref="ModelSourceKind.Ollama"/>.</summary>
    public Uri? DownloadUrl { get; private init; }

    /// <summary>The last path segment (unescaped); may still need <see cref="ModelFileName.Sanitize"/>. Null for Ollama.</summary>
    public string? FileName { get; private init; }

    public string? Owner { get; private init; }

    public string? Repository { get; private init; }

    /// <summary>The file's path inside the Hugging Face repository, e.g. <c>sub/model.gguf</c>.</summary>
    public string? FilePath { get; private init; }

    /// <summary>The Hugging Face revision (branch, tag or commit); <c>main</c> unless given after <c>@</c>.</summary>
    public string? Revision { get; private init; }

    public override string ToString() => Reference;

    /// <exception cref="FormatException">The reference is not valid; the message says why.</exception>
    public static ModelSource Parse(string? input, Uri? huggingFaceBaseUrl = null) =>
        TryParse(input, huggingFaceBaseUrl, out var source, out var error) ? source : throw new FormatException(error);

    public static bool TryParse(
        string? input,
        Uri? huggingFaceBaseUrl,
        [NotNullWhen(true)] out ModelSource? source,
        [NotNullWhen(false)] out string? error)
    {
        var baseUrl = huggingFaceBaseUrl ?? DefaultHuggingFaceBaseUrl;
        if (!baseUrl.IsAbsoluteUri || (baseUrl.Scheme != Uri.UriSchemeHttp && baseUrl.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException("The Hugging Face base URL must be an absolute http:// or https:// URL.", nameof(huggingFaceBaseUrl));
        }

        source = null;
        var reference = input?.Trim() ?? "";
        if (reference.Length == 0)
        {
            error = "Model reference is empty.";
            return false;
        }

        if (reference.Any(char.IsControl))
        {
            error = "Model reference contains control characters.";
            return false;
        }

        if (reference.StartsWith(HuggingFacePrefix, StringComparison.OrdinalIgnoreCase))
        {
            return TryParseHuggingFace(reference, baseUrl, out source, out error);
        }

        var scheme = SchemePattern().Match(reference);
        if (scheme.Success || reference.StartsWith("http:", StringComparison.OrdinalIgnoreCase)
            || reference.StartsWith("https:", StringComparison.OrdinalIgnoreCase))
        {
            var name = scheme.Success ? scheme.Groups[1].Value.ToLowerInvariant() : "";
            if (scheme.Success && name != Uri.UriSchemeHttp && name != Uri.UriSchemeHttps)
            {
                error = $"Unsupported scheme '{name}'; use hf:owner/repo/file.gguf, an http(s) URL or an Ollama model name.";
                return false;
            }

            return TryParseHttp(reference, out source, out error);
        }

        if (reference.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
        {
            error = $"'{reference}' looks like a local file; use hf:owner/repo/file.gguf or an http(s) URL.";
            return false;
        }

        if (reference.Contains("..", StringComparison.Ordinal))
        {
            error = "Model reference must not contain '..'.";
            return false;
        }

        if (!OllamaNamePattern().IsMatch(reference))
        {
            error = $"'{reference}' is not a Hugging Face reference (hf:owner/repo/file.gguf), an http(s) URL or an Ollama model name.";
            return false;
        }

        source = new ModelSource(ModelSourceKind.Ollama, reference);
        error = null;
        return true;
    }

    private static bool TryParseHuggingFace(string reference, Uri baseUrl, out ModelSource? source, out string? error)
    {
        const string Shape = "Hugging Face reference must look like hf:owner/repo/path/to/file.gguf[@revision].";
        source = null;
        var body = reference[HuggingFacePrefix.Length..];

        // One '@' at most: everything after it is the revision, which may itself contain '/' (refs/pr/1).
        var parts = body.Split('@');
        if (parts.Length > 2)
        {
            error = "Hugging Face reference may contain '@' only once, before the revision.";
            return false;
        }

        var revision = parts.Length == 2 ? parts[1] : DefaultRevision;
        if (revision.Length == 0)
        {
            error = "Hugging Face revision after '@' is empty.";
            return false;
        }

        var segments = parts[0].Split('/');
        if (segments.Length < 3 || segments.Any(s => s.Length == 0))
        {
            error = Shape;
            return false;
        }

        if (segments.Any(s => s is "." or ".."))
        {
            error = "Hugging Face reference must not contain '.' or '..' path segments.";
            return false;
        }

        if (!RepositoryNamePattern().IsMatch(segments[0]) || !RepositoryNamePattern().IsMatch(segments[1])
            || segments[0].Contains("..", StringComparison.Ordinal) || segments[1].Contains("..", StringComparison.Ordinal))
        {
            error = $"Hugging Face repository '{segments[0]}/{segments[1]}' is not valid.";
            return false;
        }

        if (segments.Any(s => s.Contains('\\', StringComparison.Ordinal)))
        {
            error = "Hugging Face file path must not contain '\\'.";
            return false;
        }

        if (!RevisionPattern().IsMatch(revision) || revision.Split('/').Any(s => s is "" or "." or ".."))
        {
            error = $"Hugging Face revision '{revision}' is not valid.";
            return false;
        }

        var pathSegments = segments[2..];
        var url = $"{baseUrl.AbsoluteUri.TrimEnd('/')}/{segments[0]}/{segments[1]}/resolve/"
            + $"{Uri.EscapeDataString(revision)}/{string.Join('/', pathSegments.Select(Uri.EscapeDataString))}";
        source = new ModelSource(ModelSourceKind.HuggingFace, reference)
        {
            DownloadUrl = new Uri(url),
            FileName = pathSegments[^1],
            Owner = segments[0],
            Repository = segments[1],
            FilePath = string.Join('/', pathSegments),
            Revision = revision,
        };
        error = null;
        return true;
    }

    private static bool TryParseHttp(string reference, out ModelSource? source, out string? error)
    {
        source = null;
        if (!Uri.TryCreate(reference, UriKind.Absolute, out var uri) || uri.Host.Length == 0
            || !reference.Contains("://", StringComparison.Ordinal))
        {
            error = $"'{reference}' is not a valid URL.";
            return false;
        }

        if (uri.UserInfo.Length != 0)
        {
            error = "URL must not contain credentials.";
            return false;
        }

        // Uri collapses "a/../b" silently, so look at the path as typed.
        var afterAuthority = reference[(reference.IndexOf("://", StringComparison.Ordinal) + 3)..];
        var slash = afterAuthority.IndexOf('/', StringComparison.Ordinal);
        var rawPath = slash < 0 ? "" : afterAuthority[slash..];
        var end = rawPath.IndexOfAny(['?', '#']);
        if (end >= 0)
        {
            rawPath = rawPath[..end];
        }

        if (rawPath.Split('/').Skip(1).Select(Uri.UnescapeDataString).Any(s => s is "." or ".."))
        {
            error = "URL path must not contain '.' or '..' segments.";
            return false;
        }

        var last = Uri.UnescapeDataString(uri.AbsolutePath.Split('/')[^1]);
        source = new ModelSource(ModelSourceKind.Http, reference)
        {
            DownloadUrl = uri,
            FileName = last.Length == 0 ? null : last,
        };
        error = null;
        return true;
    }

    [GeneratedRegex("^([A-Za-z][A-Za-z0-9+.-]*):/")]
    private static partial Regex SchemePattern();

    // Hugging Face user, organisation and repository names.
    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")]
    private static partial Regex RepositoryNamePattern();

    [GeneratedRegex("^[A-Za-z0-9._/-]{1,255}$")]
    private static partial Regex RevisionPattern();

    // [host/][namespace/]model[:tag], as Ollama accepts them (hf.co/owner/repo:Q4_K_M included).
    [GeneratedRegex("^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,79}/){0,2}[A-Za-z0-9][A-Za-z0-9._-]{0,79}(?::[A-Za-z0-9_][A-Za-z0-9._-]{0,79})?$")]
    private static partial Regex OllamaNamePattern();
}

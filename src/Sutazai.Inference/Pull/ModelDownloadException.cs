using System.Net;

namespace Sutazai.Inference.Pull;

public enum ModelDownloadError
{
    /// <summary>The connection kept failing; the partial file is kept for the next attempt.</summary>
    NetworkFailure,

    /// <summary>The server answered with an error status; the partial file is kept.</summary>
    HttpError,

    /// <summary>The server's answer made no sense (too many redirects, https to http); the partial file is kept.</summary>
    InvalidResponse,

    /// <summary>The size differs from the expected or announced one; the partial file is deleted.</summary>
    SizeMismatch,

    /// <summary>The SHA-256 differs from the expected one; the partial file is deleted.</summary>
    ChecksumMismatch,

    /// <summary>The file does not start with the GGUF magic; the partial file is deleted.</summary>
    NotGguf,

    /// <summary>A different file already has the target name; it is kept, and a partial downloaded for it is deleted.</summary>
    DestinationConflict,

    /// <summary>Another process holds the partial file of the same target; nothing is touched.</summary>
    TargetBusy,
}

public sealed class ModelDownloadException : Exception
{
    public ModelDownloadException(ModelDownloadError error, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Error = error;
    }

    public ModelDownloadError Error { get; }

    /// <summary>The last HTTP status, for <see cref="ModelDownloadError.HttpError"/>.</summary>
    public HttpStatusCode? StatusCode { get; init; }
}

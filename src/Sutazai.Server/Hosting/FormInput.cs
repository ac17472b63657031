namespace Sutazai.Server.Hosting;

/// <summary>Reading a form or multipart body where a malformed one is the client's mistake (400), not the server's.</summary>
public static class FormInput
{
    /// <summary>
    /// <see cref="HttpRequest.ReadFormAsync(CancellationToken)"/>, but a body the form reader cannot parse — a multipart
    /// body without its boundary or cut short, a key or value over the reader's limits — is a 400 naming why.
    /// </summary>
    public static async Task<IFormCollection> ReadFormCheckedAsync(this HttpRequest request, CancellationToken ct)
    {
        try
        {
            return await request.ReadFormAsync(ct);
        }
        catch (Exception e) when (e is InvalidDataException or IOException && !ct.IsCancellationRequested && !request.HttpContext.RequestAborted.IsCancellationRequested)
        {
            throw new BadHttpRequestException($"The form body could not be read: {e.Message}", StatusCodes.Status400BadRequest, e);
        }
    }
}

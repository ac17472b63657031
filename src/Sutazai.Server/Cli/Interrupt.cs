using System.Runtime.InteropServices;

namespace Sutazai.Server.Cli;

/// <summary>
/// Ctrl+C (SIGINT) as a cancellation instead of the end of the process, for the commands that have something to do
/// about it: a pull says how to resume, <c>chat</c> stops the reply and keeps the partial answer.
/// </summary>
public sealed class Interrupt : IDisposable
{
    private readonly PosixSignalRegistration _registration;
    private CancellationTokenSource _current = new();

    public Interrupt()
    {
        _registration = PosixSignalRegistration.Create(PosixSignal.SIGINT, context =>
        {
            context.Cancel = true;
            Count++;
            _current.Cancel();
        });
    }

    /// <summary>How many times Ctrl+C was pressed.</summary>
    public int Count { get; private set; }

    public CancellationToken Token => _current.Token;

    /// <summary>A fresh token for the next piece of work (the next reply of a chat).</summary>
    public CancellationToken Renew()
    {
        if (_current.IsCancellationRequested)
        {
            _current.Dispose();
            _current = new CancellationTokenSource();
        }
        return _current.Token;
    }

    public void Dispose()
    {
        _registration.Dispose();
        _current.Dispose();
    }
}

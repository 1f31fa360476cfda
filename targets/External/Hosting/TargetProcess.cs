using System.Buffers.Binary;
using System.ComponentModel;
using System.Diagnostics;
using EptFuzz.Contract;
using EptFuzz.Targets.External.Protocol;

namespace EptFuzz.Targets.External.Hosting;

/// <summary>
/// One running target executable: frames out on its stdin, frames in from its stdout, its stderr
/// kept as a tail. A command that gets no answer within the time limit kills the process (a hang);
/// an answer that never comes because the process died is a crash. Both are faults of the code
/// under test (<see cref="TargetFaultException"/>); failing to start at all is infrastructure
/// (<see cref="TargetFailureException"/>).
/// </summary>
internal sealed class TargetProcess : IDisposable
{
    /// <summary>The protocol's limit on one body.</summary>
    public const int MaxBody = 1 << 20;

    private readonly Process process;
    private readonly Stream toTarget;
    private readonly Stream fromTarget;
    private readonly StderrTail stderr = new();
    private readonly Timer watchdog;
    private readonly TimeSpan timeout;
    private byte[] body = new byte[4096];
    // Answers arrive many to a read when commands went ahead: read in large pieces.
    private readonly byte[] input = new byte[1 << 16];
    private int inputStart;
    private int inputEnd;
    private readonly int inputDescriptor;
    // Stopwatch ticks when the pending command must have been answered; 0 while idle.
    private long deadline;
    private volatile bool killedForHang;
    private bool disposed;

    private TargetProcess(Process process, TimeSpan timeout, string label)
    {
        this.process = process;
        this.timeout = timeout;
        Label = label;
        toTarget = process.StandardInput.BaseStream;
        fromTarget = process.StandardOutput.BaseStream;
        inputDescriptor = PipeWait.DescriptorOf(fromTarget);
        process.ErrorDataReceived += (_, e) => stderr.Append(e.Data);
        process.BeginErrorReadLine();
        var period = TimeSpan.FromMilliseconds(Math.Clamp(timeout.TotalMilliseconds / 4, 10, 250));
        watchdog = new Timer(_ => Watch(), null, period, period);
    }

    /// <summary>Who is answering, for messages: the declared name once known, else the path.</summary>
    public string Label { get; set; }

    public int Id => process.Id;

    /// <summary>Starts the executable; a path that cannot be run is an infrastructure failure.</summary>
    public static TargetProcess Start(string path, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(path)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        try
        {
            var process = Process.Start(info) ?? throw new TargetFailureException($"exec:{path}", "the process did not start");
            return new TargetProcess(process, timeout, $"exec:{path}");
        }
        catch (Win32Exception e)
        {
            throw new TargetFailureException($"exec:{path}", $"cannot run '{path}': {e.Message}", e);
        }
    }

    public string StderrTail => stderr.ToString();

    /// <summary>Sends one whole frame (length prefix included).</summary>
    public void Send(ReadOnlySpan<byte> frame)
    {
        Arm();
        try
        {
            toTarget.Write(frame);
            toTarget.Flush();
        }
        catch (IOException e)
        {
            throw Died("a command could not be written", e);
        }
    }

    /// <summary>Reads one answer body; valid until the next call.</summary>
    public ReadOnlySpan<byte> Receive()
    {
        Arm();
        Span<byte> prefix = stackalloc byte[4];
        ReadExactly(prefix);
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(prefix);
        if (length == 0 || length > MaxBody)
        {
            Disarm();
            throw new ProtocolViolation("frame-length", $"an answer frame of {length} bytes (1 to {MaxBody} allowed)");
        }

        if (body.Length < length)
        {
            body = new byte[Math.Max(length, (uint)body.Length * 2)];
        }

        var span = body.AsSpan(0, (int)length);
        ReadExactly(span);
        Disarm();
        return span;
    }

    private void ReadExactly(Span<byte> into)
    {
        int done = 0;
        while (done < into.Length)
        {
            if (inputStart == inputEnd)
            {
                PipeWait.BrieflyFor(inputDescriptor);
                int n;
                try
                {
                    n = fromTarget.Read(input);
                }
                catch (IOException e)
                {
                    throw Died("its output broke", e);
                }

                if (n == 0)
                {
                    throw Died(done == 0 ? "no answer came" : "an answer stopped half-way", null);
                }

                inputStart = 0;
                inputEnd = n;
            }

            int take = Math.Min(into.Length - done, inputEnd - inputStart);
            input.AsSpan(inputStart, take).CopyTo(into[done..]);
            inputStart += take;
            done += take;
        }
    }

    private void Arm() => Interlocked.Exchange(ref deadline, Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency));

    private void Disarm() => Interlocked.Exchange(ref deadline, 0);

    private void Watch()
    {
        long due = Interlocked.Read(ref deadline);
        if (due != 0 && Stopwatch.GetTimestamp() > due && !killedForHang)
        {
            killedForHang = true;
            Kill();
        }
    }

    /// <summary>The process is gone (or was killed for a hang): which fault, with its stderr.</summary>
    private TargetFaultException Died(string what, Exception? inner)
    {
        Disarm();
        if (!process.WaitForExit(2000))
        {
            Kill();
            process.WaitForExit(2000);
        }

        // Let the asynchronous stderr reader reach the end of the stream.
        process.WaitForExit();
        string log = stderr.ToString();
        if (killedForHang)
        {
            return new TargetFaultException(Label, TargetFaultKind.Hang, "timeout", $"no answer within {timeout.TotalSeconds:0.###} s; killed", log);
        }

        string detail = ExitDetail(process.ExitCode);
        string message = $"{what}: the process ended ({detail})" + (inner is null ? string.Empty : $" [{inner.Message}]");
        return new TargetFaultException(Label, TargetFaultKind.Crash, detail, message, log);
    }

    /// <summary>"SIGSEGV" for a process killed by a signal (.NET reports 128 + the signal), else "exit-N".</summary>
    internal static string ExitDetail(int exitCode) => exitCode switch
    {
        > 128 and < 128 + 65 => SignalName(exitCode - 128),
        _ => $"exit-{exitCode}",
    };

    private static string SignalName(int signal) => signal switch
    {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => $"signal-{signal}",
    };

    public void Kill()
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // It exited between the check and the kill: nothing left to stop.
        }
        catch (Win32Exception)
        {
            // Likewise: the process is already gone.
        }
    }

    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        watchdog.Dispose();
        try
        {
            // End of input asks a well-behaved target to exit with status 0.
            toTarget.Dispose();
        }
        catch (IOException)
        {
            // The pipe is already broken: the process is gone or going.
        }

        if (!process.WaitForExit(500))
        {
            Kill();
            process.WaitForExit(2000);
        }

        process.Dispose();
    }
}

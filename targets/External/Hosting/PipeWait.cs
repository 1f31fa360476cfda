using System.Diagnostics;
using System.IO.Pipes;
using System.Runtime.InteropServices;

namespace EptFuzz.Targets.External.Hosting;

/// <summary>
/// A short wait for an answer before blocking on the pipe. A target that answers within
/// microseconds would otherwise cost a sleep and a wake-up per answer, and on a virtual machine
/// waking an idle CPU takes tens of microseconds: one worker against its target was bound by that
/// latency. The wait yields the CPU between checks, so a target on the same CPU still runs.
/// </summary>
internal static partial class PipeWait
{
    /// <summary>How long to check before blocking.</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 20_000; // 50 µs

    private const short PollIn = 0x1;

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static partial int Poll(ref PollFd fds, nuint count, int timeoutMs);

    /// <summary>The pipe's descriptor, or -1 where it is not a pipe this can wait on (then nothing is waited for).</summary>
    public static int DescriptorOf(Stream stream) =>
        OperatingSystem.IsLinux() && stream is PipeStream pipe ? (int)pipe.SafePipeHandle.DangerousGetHandle() : -1;

    /// <summary>Returns once <paramref name="fd"/> has data (or end of input), or after the spin time: the read that follows may still block.</summary>
    public static void BrieflyFor(int fd)
    {
        if (fd < 0)
        {
            return;
        }

        long until = Stopwatch.GetTimestamp() + SpinTicks;
        var poll = new PollFd { Fd = fd, Events = PollIn };
        do
        {
            poll.Revents = 0;
            if (Poll(ref poll, 1, 0) != 0)
            {
                return;
            }

            Thread.Yield();
        }
        while (Stopwatch.GetTimestamp() < until);
    }
}

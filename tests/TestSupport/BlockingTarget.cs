using EptFuzz.Contract;

namespace EptFuzz.TestSupport;

/// <summary>A translator whose first probe blocks until <see cref="Release"/> is set: a hang on demand (a case on it can only time out until then).</summary>
public sealed class BlockingTarget(ManualResetEventSlim release) : ITarget
{
    public string Name => "blocking";

    public TargetTraits Traits => TargetTraits.Immediate;

    public IReadOnlyList<string> RuleNames => [];

    public ManualResetEventSlim Release { get; } = release;

    /// <summary>The managed thread each session was opened on, in order.</summary>
    public List<int> OpenedOn { get; } = [];

    public ITargetSession Open(CpuCapabilities cpu)
    {
        lock (OpenedOn)
        {
            OpenedOn.Add(Environment.CurrentManagedThreadId);
        }

        return new Session(Release);
    }

    private sealed class Session(ManualResetEventSlim release) : ITargetSession
    {
        public string? UnsupportedReason => null;

        public void SetEptp(ulong eptp)
        {
        }

        public void SetControls(VmxControls controls)
        {
        }

        public void SetGuestPaging(GuestPaging paging)
        {
        }

        public void Write(MemoryWrite write)
        {
        }

        public void Invept(InveptType type)
        {
        }

        public Observation? Submit(in Probe probe)
        {
            release.Wait();
            return Observation.Unsupported("the blocking test target observes nothing");
        }

        public IReadOnlyDictionary<int, Observation> Finish() => new Dictionary<int, Observation>();

        public void Dispose()
        {
        }
    }
}

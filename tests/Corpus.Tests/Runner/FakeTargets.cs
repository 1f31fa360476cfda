using EptFuzz.Contract;

namespace EptFuzz.Corpus.Tests.Runner;

/// <summary>A target that answers like another but rewrites some observations: a planted bug.</summary>
internal sealed class RewritingTarget(ITarget inner, string name, Func<Observation, Observation> rewrite, bool batch = false) : ITarget
{
    public string Name => name;

    public TargetTraits Traits => batch ? inner.Traits & ~TargetTraits.Immediate : inner.Traits;

    public IReadOnlyList<string> RuleNames => [];

    public ITargetSession Open(CpuCapabilities cpu) => new Session(inner.Open(cpu), rewrite, batch);

    private sealed class Session(ITargetSession inner, Func<Observation, Observation> rewrite, bool batch) : ITargetSession
    {
        private readonly Dictionary<int, Observation> answers = [];

        public string? UnsupportedReason => inner.UnsupportedReason;

        public void SetEptp(ulong eptp) => inner.SetEptp(eptp);

        public void SetControls(VmxControls controls) => inner.SetControls(controls);

        public void SetGuestPaging(GuestPaging paging) => inner.SetGuestPaging(paging);

        public void Write(MemoryWrite write) => inner.Write(write);

        public void Invept(InveptType type) => inner.Invept(type);

        public Observation? Submit(in Probe probe)
        {
            var o = rewrite(inner.Submit(probe)!);
            if (!batch)
            {
                return o;
            }

            answers[probe.Step] = o;
            return null;
        }

        public IReadOnlyDictionary<int, Observation> Finish() => answers;

        public void Dispose() => inner.Dispose();
    }
}

/// <summary>A target whose every probe throws: a crash, or an infrastructure failure.</summary>
internal sealed class ThrowingTarget(Exception exception) : ITarget
{
    public string Name => "thrower";

    public TargetTraits Traits => TargetTraits.Immediate;

    public IReadOnlyList<string> RuleNames => [];

    public ITargetSession Open(CpuCapabilities cpu) => new Session(exception);

    private sealed class Session(Exception exception) : ITargetSession
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

        public Observation? Submit(in Probe probe) => throw exception;

        public IReadOnlyDictionary<int, Observation> Finish() => new Dictionary<int, Observation>();

        public void Dispose()
        {
        }
    }
}

using EptFuzz.Contract;
using EptFuzz.Impl.Cpu;
using EptFuzz.Impl.Memory;

namespace EptFuzz.Impl.Target;

/// <summary>One case on the implementation's virtual CPU: its own copy of host memory, its own TLB.</summary>
public sealed class ImplTargetSession : ITargetSession
{
    private readonly SparseHostMemory memory = new();
    private readonly VirtualCpu cpu;
    private bool disposed;

    public ImplTargetSession(CpuCapabilities cpu)
    {
        this.cpu = new VirtualCpu(cpu, memory);
        UnsupportedReason = cpu.MaxPhyAddr is < 24 or > 52 ? $"MAXPHYADDR {cpu.MaxPhyAddr} is outside 24..52" : null;
    }

    public string? UnsupportedReason { get; }

    /// <summary>Whether the virtual CPU keeps a TLB (the default) or walks on every access.</summary>
    public bool CachesTranslations
    {
        get => cpu.CachingEnabled;
        init => cpu.CachingEnabled = value;
    }

    public VirtualCpu Cpu => cpu;

    public SparseHostMemory Memory => memory;

    public void SetEptp(ulong eptp) => Live().SetEptp(eptp);

    public void SetControls(VmxControls controls) => Live().SetControls(controls);

    public void SetGuestPaging(GuestPaging paging) => Live().SetGuestPaging(paging);

    // A raw write does not touch the TLB: a stale translation may survive until INVEPT, as on hardware.
    public void Write(MemoryWrite write)
    {
        Live();
        memory.Write(write.Address, write.Value);
    }

    public void WritePage(Hpa page, ReadOnlySpan<ulong> words)
    {
        Live();
        memory.WritePage(page.Value, words);
    }

    public void Invept(InveptType type) => Live().Invept(type);

    public Observation? Submit(in Probe probe)
    {
        VirtualCpu cpu = Live();
        if (UnsupportedReason is { } reason)
        {
            return Observation.Unsupported(reason);
        }

        switch (probe.Kind)
        {
            case ProbeKind.Access:
                return cpu.Access(probe.Access).ToObservation();
            case ProbeKind.Entry:
                return cpu.TryReadEntry(probe.EntryGpa, probe.EntryLevel, out ulong value)
                    ? new Observation { Kind = OutcomeKind.Entry, EntryValue = value }
                    : new Observation { Kind = OutcomeKind.EntryNotReached };
            case ProbeKind.VmEntry:
                return new Observation { Kind = OutcomeKind.VmEntry, VmEntryOk = cpu.VmEntryPasses };
            default:
                return Observation.Unsupported($"probe kind {probe.Kind} is not known to this target");
        }
    }

    /// <summary>Every probe was answered by <see cref="Submit"/>; nothing is left.</summary>
    public IReadOnlyDictionary<int, Observation> Finish()
    {
        Live();
        return new Dictionary<int, Observation>();
    }

    public void Dispose()
    {
        if (!disposed)
        {
            disposed = true;
            memory.Release();
            cpu.Tlb.Release();
        }
    }

    private VirtualCpu Live()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        return cpu;
    }
}

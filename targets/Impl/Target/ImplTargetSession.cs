using EptFuzz.Contract;
using EptFuzz.Impl.Cpu;
using EptFuzz.Impl.Memory;

namespace EptFuzz.Impl.Target;

/// <summary>One case on the implementation's virtual CPU: its own copy of host memory, its own TLB.</summary>
public sealed class ImplTargetSession : ITargetSession
{
    private readonly SparseHostMemory _memory = new();
    private readonly VirtualCpu _cpu;
    private bool _disposed;

    public ImplTargetSession(CpuCapabilities cpu)
    {
        _cpu = new VirtualCpu(cpu, _memory);
        UnsupportedReason = cpu.MaxPhyAddr is < 24 or > 52 ? $"MAXPHYADDR {cpu.MaxPhyAddr} is outside 24..52" : null;
    }

    public string? UnsupportedReason { get; }

    /// <summary>Whether the virtual CPU keeps a TLB (the default) or walks on every access.</summary>
    public bool CachesTranslations
    {
        get => _cpu.CachingEnabled;
        init => _cpu.CachingEnabled = value;
    }

    public VirtualCpu Cpu => _cpu;

    public SparseHostMemory Memory => _memory;

    public void SetEptp(ulong eptp) => Live().SetEptp(eptp);

    public void SetControls(VmxControls controls) => Live().SetControls(controls);

    public void SetGuestPaging(GuestPaging paging) => Live().SetGuestPaging(paging);

    // A raw write does not touch the TLB: a stale translation may survive until INVEPT, as on hardware.
    public void Write(MemoryWrite write)
    {
        Live();
        _memory.Write(write.Address, write.Value);
    }

    public void WritePage(Hpa page, ReadOnlySpan<ulong> words)
    {
        Live();
        _memory.WritePage(page.Value, words);
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
        if (!_disposed)
        {
            _disposed = true;
            _memory.Release();
            _cpu.Tlb.Release();
        }
    }

    private VirtualCpu Live()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _cpu;
    }
}

using EptFuzz.Contract;
using Ref = EptFuzz.Reference;

namespace EptFuzz.Targets.Model;

/// <summary>One case on the model: its own sparse memory, EPTP, controls and guest paging.</summary>
internal sealed class ModelSession : ITargetSession
{
    private readonly Ref.ProcessorCapabilities capabilities;
    private readonly PagedMemory memory = new();
    private Ref.Eptp eptp;
    private Ref.VmExecutionControls controls;
    private Ref.GuestPagingState guest = Ref.GuestPagingState.Off;

    public ModelSession(CpuCapabilities cpu)
    {
        capabilities = ContractMapping.ToModel(cpu);
        UnsupportedReason = cpu.MaxPhyAddr is < 12 or > 52
            ? $"MAXPHYADDR {cpu.MaxPhyAddr} is outside 12..52"
            : null;
    }

    public string? UnsupportedReason { get; }

    public void SetEptp(ulong value) => eptp = new Ref.Eptp(value);

    public void SetControls(VmxControls value) => controls = new Ref.VmExecutionControls(value.Mbec);

    public void SetGuestPaging(GuestPaging paging)
    {
        ArgumentNullException.ThrowIfNull(paging);
        guest = ContractMapping.ToModel(paging);
    }

    public void Write(MemoryWrite write) => memory.Write(new Ref.Hpa(write.Address.Value), write.Value);

    public void WritePage(Hpa page, ReadOnlySpan<ulong> words) => memory.WritePage(page.Value, words);

    /// <summary>The model caches nothing, so there is nothing to invalidate.</summary>
    public void Invept(InveptType type)
    {
    }

    public Observation? Submit(in Probe probe) => UnsupportedReason is not null ? Observation.Unsupported(UnsupportedReason) : probe.Kind switch
    {
        ProbeKind.Access => Access(probe.Access),
        ProbeKind.Entry => Entry(probe.EntryGpa, probe.EntryLevel),
        ProbeKind.VmEntry => VmEntry(),
        _ => throw new ArgumentOutOfRangeException(nameof(probe), probe.Kind, "unknown probe kind"),
    };

    public IReadOnlyDictionary<int, Observation> Finish() => new Dictionary<int, Observation>();

    public void Dispose() => memory.Release();

    private Observation Access(Access access)
    {
        var request = new Ref.TranslationRequest(capabilities, eptp, controls, guest, memory, ContractMapping.ToModel(access));
        Ref.Evaluation evaluation = Ref.EptModel.Evaluate(request);
        memory.Apply(evaluation.Writes);

        return ContractMapping.ToObservation(evaluation);
    }

    private Observation Entry(Gpa gpa, EptLevel level)
    {
        Ref.EntryLookup lookup = Ref.EptModel.FindEntry(eptp, controls, memory, new Ref.Gpa(gpa.Value), (Ref.Level)(byte)level);
        return lookup.Reached
            ? new Observation { Kind = OutcomeKind.Entry, EntryValue = lookup.Value }
            : new Observation { Kind = OutcomeKind.EntryNotReached };
    }

    private Observation VmEntry()
    {
        Ref.VmEntryVerdict verdict = Ref.EptModel.CheckVmEntry(capabilities, eptp, controls);
        return new Observation { Kind = OutcomeKind.VmEntry, VmEntryOk = verdict.Succeeds, Rules = ContractMapping.ToContract(verdict.Fired) };
    }
}

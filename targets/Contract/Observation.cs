namespace EptFuzz.Contract;

/// <summary>What a probe produced. Architectural events are values, never exceptions.</summary>
public enum OutcomeKind : byte
{
    /// <summary>The access completed (a <c>read/write/fetch</c> probe).</summary>
    Translated,
    /// <summary>VM exit, basic reason 48.</summary>
    EptViolation,
    /// <summary>VM exit, basic reason 49.</summary>
    EptMisconfiguration,
    /// <summary>A guest #PF (no VM exit).</summary>
    GuestPageFault,
    /// <summary>An <c>entry</c> probe: the walk reached the level; <see cref="Observation.EntryValue"/> holds it.</summary>
    Entry,
    /// <summary>An <c>entry</c> probe: the walk did not reach the level.</summary>
    EntryNotReached,
    /// <summary>A <c>vmentry</c> probe; <see cref="Observation.VmEntryOk"/> holds the verdict.</summary>
    VmEntry,
    /// <summary>An access probe while VM entry would fail with the current EPTP and controls: the guest never runs.</summary>
    NoVmEntry,
    /// <summary>The target cannot express this probe; <see cref="Observation.Reason"/> says why.</summary>
    Unsupported,
}

/// <summary>Which paging structure a walk entry belongs to.</summary>
public enum WalkStructure : byte
{
    Ept,
    Guest,
}

/// <summary>
/// One paging-structure entry read during a probe: the structure, its level, the host-physical
/// address of the entry, the value read, and the address being translated (a GPA for EPT entries,
/// a linear address for guest entries).
/// </summary>
public readonly record struct WalkEntry(WalkStructure Structure, EptLevel Level, Hpa Address, ulong Value, ulong Translating);

/// <summary>The observation of one probe. Fields not meaningful for <see cref="Kind"/> are zero.</summary>
public sealed record Observation
{
    public required OutcomeKind Kind { get; init; }

    /// <summary>Translated: the host-physical address accessed.</summary>
    public Hpa Hpa { get; init; }
    /// <summary>Translated: the size of the EPT page that maps the final guest-physical address.</summary>
    public PageSize PageSize { get; init; }
    /// <summary>Translated: the effective memory type.</summary>
    public MemoryType MemoryType { get; init; }
    /// <summary>Translated: the permissions the EPT walk grants (AND over the walk).</summary>
    public EptPermissions Permissions { get; init; }

    /// <summary>Translated: the final guest-physical address. Violation/misconfiguration: the guest-physical-address field.</summary>
    public Gpa Gpa { get; init; }
    /// <summary>Violation: the exit qualification (bits 0-12 as the SDM defines them).</summary>
    public ulong Qualification { get; init; }
    /// <summary>Violation: the guest-linear-address field, meaningful when <see cref="GuestLinearAddressValid"/>.</summary>
    public ulong GuestLinearAddress { get; init; }
    public bool GuestLinearAddressValid { get; init; }

    /// <summary>Guest page fault: the error code.</summary>
    public uint ErrorCode { get; init; }

    /// <summary>Entry probe: the entry's value.</summary>
    public ulong EntryValue { get; init; }
    /// <summary>VM-entry probe: true when VM entry accepts the EPTP and controls.</summary>
    public bool VmEntryOk { get; init; }

    /// <summary>Unsupported: why.</summary>
    public string? Reason { get; init; }

    /// <summary>The paging-structure entries read, in order (empty when the target cannot say).</summary>
    public IReadOnlyList<WalkEntry> Walk { get; init; } = [];
    /// <summary>The A/D writes the probe made (EPT and guest), in order.</summary>
    public IReadOnlyList<MemoryWrite> Writes { get; init; } = [];
    /// <summary>The rule ids that fired (only targets that model rules fill it).</summary>
    public RuleBits Rules { get; init; }

    public static Observation Unsupported(string reason) => new() { Kind = OutcomeKind.Unsupported, Reason = reason };
}

using EptFuzz.Reference.Rules;

namespace EptFuzz.Reference;

/// <summary>Which paging structure a walk step read.</summary>
public enum Structure : byte
{
    Ept,
    Guest,
}

/// <summary>
/// One paging-structure entry read: the structure, its level, the host-physical address of the
/// entry, the value read, and the address being translated (a GPA for EPT entries, a linear address
/// for guest entries).
/// </summary>
public readonly record struct WalkStep(Structure Structure, Level Level, Hpa Address, ulong Value, ulong Translating);

/// <summary>The architectural result of one access. Events are values, never exceptions.</summary>
public abstract record AccessOutcome;

/// <summary>The access completes.</summary>
/// <param name="Hpa">Host-physical address accessed (page offset included).</param>
/// <param name="Gpa">The final guest-physical address.</param>
/// <param name="PageSize">Size of the EPT leaf that maps <paramref name="Gpa"/>.</param>
/// <param name="MemoryType">The effective memory type (EPT-MT-4).</param>
/// <param name="Permissions">AND of R, W, X (and XU under MBEC) over the EPT walk of <paramref name="Gpa"/>.</param>
public sealed record Translated(Hpa Hpa, Gpa Gpa, PageSize PageSize, MemoryType MemoryType, EptPermissions Permissions) : AccessOutcome;

/// <summary>VM exit with basic exit reason 48 (EPT violation).</summary>
public sealed record EptViolation(ExitQualification Qualification, Gpa Gpa, Gla GuestLinearAddress, bool GuestLinearAddressValid) : AccessOutcome;

/// <summary>VM exit with basic exit reason 49 (EPT misconfiguration); its exit qualification is 0.</summary>
public sealed record EptMisconfiguration(Gpa Gpa) : AccessOutcome;

/// <summary>A #PF delivered to the guest (no VM exit).</summary>
public sealed record GuestPageFault(uint ErrorCode) : AccessOutcome
{
    // See: "Page-Fault Exceptions" (Vol 3A §4.7): the error code's bits.
    public const uint Present = 1 << 0;
    public const uint WriteAccess = 1 << 1;
    public const uint UserMode = 1 << 2;
    public const uint ReservedBit = 1 << 3;
    public const uint InstructionFetch = 1 << 4;
}

/// <summary>The access never runs: VM entry fails with the given EPTP and controls.</summary>
public sealed record VmEntryFailed : AccessOutcome
{
    public static VmEntryFailed Instance { get; } = new();
}

/// <summary>
/// One evaluation: the outcome, every paging-structure entry read in order, the A/D writes made
/// (EPT and guest, in order; the caller applies them), and the rules that fired.
/// </summary>
public sealed record Evaluation(AccessOutcome Outcome, IReadOnlyList<WalkStep> Walk, IReadOnlyList<PhysicalWrite> Writes, RuleSet Fired);

/// <summary>The VM-entry verdict for an EPTP and controls, and the rules that decided it.</summary>
public readonly record struct VmEntryVerdict(bool Succeeds, RuleSet Fired);

/// <summary>Where an entry probe ended: the entry's address and value when the walk reached the level.</summary>
public readonly record struct EntryLookup(bool Reached, Hpa Address, ulong Value);

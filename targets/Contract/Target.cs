namespace EptFuzz.Contract;

/// <summary>What a target can observe; a comparison uses only what both sides observe.</summary>
[Flags]
public enum TargetTraits
{
    None = 0,
    /// <summary>Reports the effective memory type of translated accesses.</summary>
    MemoryType = 1,
    /// <summary>Reports the A/D writes each access made.</summary>
    AccessedDirtyWrites = 2,
    /// <summary>Reports the walk (entries read) of each access.</summary>
    Walk = 4,
    /// <summary>Answers <c>entry</c> probes.</summary>
    Entries = 8,
    /// <summary>Answers <c>vmentry</c> probes.</summary>
    VmEntry = 16,
    /// <summary>Answers every probe when it is submitted (else only from <see cref="ITargetSession.Finish"/>).</summary>
    Immediate = 32,
    /// <summary>May use translations cached before a raw write until the next INVEPT.</summary>
    CachesTranslations = 64,
    /// <summary>Reports exit-qualification bits 9-11 (advanced VM-exit information).</summary>
    AdvancedExitInfo = 128,
    /// <summary>Reports exit-qualification bit 6 and user-execute semantics (MBEC).</summary>
    Mbec = 256,
    /// <summary>Reports the final guest-physical address of a translated access (a VMX oracle sees no exit, so cannot).</summary>
    TranslatedGpa = 512,
    /// <summary>
    /// A software lookup (a KeOS-style <c>walk</c>, a JOS-style lookup): says where an address is
    /// mapped, not whether the access is allowed. Compared on the address and page size of
    /// translated accesses, and "not mapped" against violations whose walk ended at a not-present
    /// entry; never against misconfigurations, page faults or expectations.
    /// </summary>
    SoftwareWalk = 1024,
    /// <summary>Reports the permissions a translated access's EPT walk granted (<see cref="Observation.Permissions"/>).</summary>
    TranslatedPermissions = 2048,
}

public enum ProbeKind : byte
{
    Access,
    Entry,
    VmEntry,
}

/// <summary>A question asked of every translator at one step of a case.</summary>
public readonly record struct Probe(int Step, ProbeKind Kind, Access Access, Gpa EntryGpa, EptLevel EntryLevel)
{
    public static Probe ForAccess(int step, Access access) => new(step, ProbeKind.Access, access, default, default);

    public static Probe ForEntry(int step, Gpa gpa, EptLevel level) => new(step, ProbeKind.Entry, default, gpa, level);

    public static Probe ForVmEntry(int step) => new(step, ProbeKind.VmEntry, default, default, default);
}

/// <summary>A translator: something that answers probes about EPT tables (the reference model, the C# implementation's virtual CPU, the VMX oracle, an external process).</summary>
public interface ITarget
{
    string Name { get; }

    TargetTraits Traits { get; }

    /// <summary>Names of the rule indices this target reports in <see cref="Observation.Rules"/> (empty if none).</summary>
    IReadOnlyList<string> RuleNames { get; }

    /// <summary>Opens a session for one case on a processor with these capabilities.</summary>
    ITargetSession Open(CpuCapabilities cpu);
}

/// <summary>
/// One case on one translator. The session starts with all-zero host memory and receives, in case
/// order, every state change and every probe. Each session keeps its own copy of the memory and
/// applies its own A/D writes to it.
/// </summary>
public interface ITargetSession : IDisposable
{
    /// <summary>When the target lacks something the case needs: why (the case's probes are then unsupported). Null when usable.</summary>
    string? UnsupportedReason { get; }

    void SetEptp(ulong eptp);

    void SetControls(VmxControls controls);

    void SetGuestPaging(GuestPaging paging);

    void Write(MemoryWrite write);

    /// <summary>
    /// Writes a 4 KiB page (<paramref name="words"/>[i] at <paramref name="page"/> + 8i): the same as
    /// one <see cref="Write"/> per word in address order, which is what a session that does not
    /// override it gets. A split of a 1 GiB page into 4 KiB pages writes 512 whole tables.
    /// </summary>
    void WritePage(Hpa page, ReadOnlySpan<ulong> words)
    {
        for (int i = 0; i < words.Length; i++)
        {
            Write(new MemoryWrite(new Hpa(page.Value + ((ulong)i << 3)), words[i]));
        }
    }

    void Invept(InveptType type);

    /// <summary>An immediate target returns the observation; a batch target returns null and answers from <see cref="Finish"/>.</summary>
    Observation? Submit(in Probe probe);

    /// <summary>Ends the case; returns the observations that were not returned by <see cref="Submit"/>, keyed by step.</summary>
    IReadOnlyDictionary<int, Observation> Finish();
}

namespace EptFuzz.Reference;

/// <summary>
/// The processor's capabilities: the EPT-relevant bits of IA32_VMX_EPT_VPID_CAP (MSR 48CH), the
/// allowed-1 setting of the MBEC control, and MAXPHYADDR.
/// See: "VPID and EPT Capabilities" (App. A.10), EPT-CAP-1.
/// </summary>
public sealed record ProcessorCapabilities
{
    /// <summary>N = CPUID.80000008H:EAX[7:0]; physical-address bits at and above N are reserved.</summary>
    public int MaxPhysicalAddressWidth { get; init; } = 46;
    /// <summary>CAP[0]: entries with R = 0, W = 0 and X = 1 (or XU = 1 under MBEC) are allowed.</summary>
    public bool ExecuteOnly { get; init; } = true;
    /// <summary>CAP[6]: page-walk length 4.</summary>
    public bool PageWalkLength4 { get; init; } = true;
    /// <summary>CAP[7]: page-walk length 5 (newer editions).</summary>
    public bool PageWalkLength5 { get; init; }
    /// <summary>CAP[8]: EPTP memory type UC allowed.</summary>
    public bool EptpUncacheable { get; init; } = true;
    /// <summary>CAP[14]: EPTP memory type WB allowed.</summary>
    public bool EptpWriteBack { get; init; } = true;
    /// <summary>CAP[16]: an EPT PDE may map a 2 MB page.</summary>
    public bool Pde2MPages { get; init; } = true;
    /// <summary>CAP[17]: an EPT PDPTE may map a 1 GB page.</summary>
    public bool Pdpte1GPages { get; init; } = true;
    /// <summary>CAP[21]: accessed and dirty flags for EPT.</summary>
    public bool AccessedDirtyFlags { get; init; } = true;
    /// <summary>CAP[22]: advanced VM-exit information for EPT violations (qualification bits 9-11).</summary>
    public bool AdvancedExitInformation { get; init; }
    /// <summary>CAP[23]: supervisor shadow-stack control (EPTP bit 7).</summary>
    public bool SupervisorShadowStackControl { get; init; }
    /// <summary>IA32_VMX_PROCBASED_CTLS2 allowed-1 bit 22: mode-based execute control for EPT.</summary>
    public bool ModeBasedExecuteControl { get; init; }

    public static ProcessorCapabilities Default { get; } = new();
}

/// <summary>The VM-execution controls that change EPT semantics ("enable EPT" is always 1 here).</summary>
/// <param name="ModeBasedExecuteControl">Secondary processor-based control bit 22 (MBEC).</param>
public readonly record struct VmExecutionControls(bool ModeBasedExecuteControl);

/// <summary>
/// The guest's paging state. <see cref="Paging"/> false: CR0.PG = 0, every linear address is a
/// guest-physical address. True: 4-level paging (CR0.PG = 1, CR4.PAE = 1, IA32_EFER.LME = 1) rooted
/// at <see cref="Cr3"/>, in 64-bit mode.
/// </summary>
public sealed record GuestPagingState
{
    /// <summary>The IA32_PAT value at power-on: WB, WT, UC-, UC repeated.</summary>
    public const ulong PowerOnPat = 0x0007040600070406;

    /// <summary>CR0.PG.</summary>
    public bool Paging { get; init; }
    /// <summary>CR3; bits [51:12] locate the guest PML4 table (PCD and PWT taken as 0).</summary>
    public ulong Cr3 { get; init; }
    /// <summary>CR0.WP.</summary>
    public bool WriteProtect { get; init; } = true;
    /// <summary>IA32_EFER.NXE.</summary>
    public bool NoExecuteEnable { get; init; }
    /// <summary>CR4.SMEP.</summary>
    public bool Smep { get; init; }
    /// <summary>IA32_PAT.</summary>
    public ulong Pat { get; init; } = PowerOnPat;
    /// <summary>CR0.CD (cache disable): forces UC for every guest access (EPT-MT-4).</summary>
    public bool CacheDisable { get; init; }

    public static GuestPagingState Off { get; } = new();
}

/// <summary>The kind of a guest access.</summary>
public enum AccessType : byte
{
    Read,
    Write,
    InstructionFetch,
}

/// <summary>
/// One guest access: a read, write or instruction fetch at a guest-physical address (made with
/// CR0.PG = 0, whatever the paging state says) or at a guest-linear address (translated by the
/// guest's paging when it is on), at CPL 0 or 3.
/// </summary>
public readonly record struct GuestAccess(AccessType Type, ulong Address, bool Linear, int Cpl)
{
    public static GuestAccess Physical(AccessType type, Gpa gpa) => new(type, gpa.Value, false, 0);

    public static GuestAccess AtLinear(AccessType type, Gla gla, int cpl) => new(type, gla.Value, true, cpl);
}

/// <summary>Everything one evaluation depends on. Nothing else is read.</summary>
public sealed record TranslationRequest(
    ProcessorCapabilities Capabilities,
    Eptp Eptp,
    VmExecutionControls Controls,
    GuestPagingState Guest,
    IPhysicalMemory Memory,
    GuestAccess Access);

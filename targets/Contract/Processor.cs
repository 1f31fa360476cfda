namespace EptFuzz.Contract;

/// <summary>
/// Capabilities of the simulated processor: the EPT-relevant bits of IA32_VMX_EPT_VPID_CAP and
/// the CPUID facts a case can set with its <c>cpu</c> step. Defaults are the case format's.
/// </summary>
public sealed record CpuCapabilities
{
    /// <summary>CPUID.80000008H:EAX[7:0].</summary>
    public int MaxPhyAddr { get; init; } = 46;
    /// <summary>CAP[0]: execute-only translations.</summary>
    public bool ExecuteOnly { get; init; } = true;
    /// <summary>CAP[16]: EPT PDE may map a 2 MB page.</summary>
    public bool Page2M { get; init; } = true;
    /// <summary>CAP[17]: EPT PDPTE may map a 1 GB page.</summary>
    public bool Page1G { get; init; } = true;
    /// <summary>CAP[21]: accessed and dirty flags for EPT.</summary>
    public bool AccessedDirty { get; init; } = true;
    /// <summary>Secondary control bit 22 allowed: mode-based execute control for EPT.</summary>
    public bool Mbec { get; init; }
    /// <summary>CAP[7]: page-walk length 5.</summary>
    public bool Walk5 { get; init; }
    /// <summary>CAP[22]: advanced VM-exit information for EPT violations.</summary>
    public bool AdvancedExitInfo { get; init; }
    /// <summary>CAP[8]: EPTP memory type UC allowed.</summary>
    public bool EptpUc { get; init; } = true;
    /// <summary>CAP[14]: EPTP memory type WB allowed.</summary>
    public bool EptpWb { get; init; } = true;

    public static CpuCapabilities Default { get; } = new();
}

/// <summary>VM-execution controls that change EPT semantics.</summary>
public readonly record struct VmxControls(bool Mbec)
{
    public static VmxControls Default => default;
}

/// <summary>Guest paging: off (linear = guest-physical) or 4-level paging rooted at CR3.</summary>
public sealed record GuestPaging
{
    /// <summary>The IA32_PAT value at power-on.</summary>
    public const ulong PowerOnPat = 0x0007040600070406;

    public bool Enabled { get; init; }
    public Gpa Cr3 { get; init; }
    /// <summary>CR0.WP.</summary>
    public bool Wp { get; init; } = true;
    /// <summary>IA32_EFER.NXE.</summary>
    public bool Nxe { get; init; }
    /// <summary>CR4.SMEP.</summary>
    public bool Smep { get; init; }
    /// <summary>Guest IA32_PAT.</summary>
    public ulong Pat { get; init; } = PowerOnPat;

    public static GuestPaging Off { get; } = new();
}

public enum InveptType : byte
{
    SingleContext = 1,
    Global = 2,
}

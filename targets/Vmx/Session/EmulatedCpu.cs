using EptFuzz.Contract;
using EptFuzz.Targets.Vmx.Runner;

namespace EptFuzz.Targets.Vmx.Session;

/// <summary>What the emulated processor reported about itself (CPUID and the VMX capability MSRs).</summary>
public sealed record EmulatedCpu
{
    public required string Engine { get; init; }
    public required CpuCapabilities Capabilities { get; init; }
    /// <summary>CPUID.80000001H:EDX[26]: the oracle's guest identity-maps with 1 GiB pages.</summary>
    public required bool GuestPage1G { get; init; }
    public required IReadOnlyDictionary<uint, ulong> Msrs { get; init; }

    public int MaxPhyAddr => Capabilities.MaxPhyAddr;

    /// <summary>
    /// Bochs 2.7 masks the address of a 2M/1G EPT leaf with the legacy-paging mask that drops bit 12
    /// (the PAT bit of ordinary large pages), so a leaf misaligned only in bit 12 translates instead
    /// of being a misconfiguration. Probes through such a leaf are unsupported there.
    /// </summary>
    public bool IgnoresLargeLeafBit12 { get; init; }

    /// <summary>
    /// Bochs 2.7 translates guest paging-structure addresses for reading only when EPT A/D is off and
    /// then writes the guest's A/D bits there, so an A/D update into a page the EPT does not let the
    /// guest write completes instead of causing an EPT violation (SDM: it is a write access).
    /// </summary>
    public bool IgnoresEptWriteForGuestAccessedDirty { get; init; }

    /// <summary>
    /// Bochs 2.7, with EPT A/D on, reports an EPT violation on a guest paging-structure access with
    /// exit-qualification bit 1 (write) alone; the SDM treats such an access as a read and a write
    /// and sets bits 0 and 1 (ept-rules.md §18.4, EPT-GWALK-1). Probes whose guest walk may violate
    /// that way are unsupported there.
    /// </summary>
    public bool ReportsGuestWalkViolationAsWriteOnly { get; init; }

    /// <summary>Null when the report shows no usable VMX+EPT; the reason then says what is missing.</summary>
    public static EmulatedCpu? FromReport(string engine, OracleReport report, out string? reason)
    {
        if (report.NoVmx is string no)
        {
            reason = no switch
            {
                "NOVMX" => "the emulated processor has no VMX",
                "NOEPT" => "the emulated processor has no EPT",
                _ => "VMX is disabled and locked in IA32_FEATURE_CONTROL",
            };
            return null;
        }

        if (!report.Msrs.TryGetValue(0x48C, out ulong cap) || !report.Msrs.TryGetValue(0x48B, out ulong ctls2) ||
            !report.Cpuid.TryGetValue((0x80000008, 0), out ulong sizes) || !report.Cpuid.TryGetValue((0x80000001, 1), out ulong ext))
        {
            reason = "the kernel did not report CPUID 80000008H/80000001H and MSRs 48BH/48CH";
            return null;
        }

        reason = null;
        bool Cap(int bit) => (cap & (1UL << bit)) != 0;
        return new EmulatedCpu
        {
            Engine = engine,
            Capabilities = new CpuCapabilities
            {
                MaxPhyAddr = (int)(sizes & 0xFF),
                ExecuteOnly = Cap(0),
                Walk5 = Cap(7),
                EptpUc = Cap(8),
                EptpWb = Cap(14),
                Page2M = Cap(16),
                Page1G = Cap(17),
                AccessedDirty = Cap(21),
                AdvancedExitInfo = Cap(22),
                Mbec = (ctls2 & (1UL << (32 + 22))) != 0,
            },
            GuestPage1G = (ext & (1UL << 26)) != 0,
            Msrs = new Dictionary<uint, ulong>(report.Msrs),
        };
    }

    /// <summary>
    /// Why a case on <paramref name="wanted"/> cannot be compared with this processor, or null. A
    /// capability that differs matters only where the case uses it (<paramref name="use"/>): an
    /// execute-only entry, a large PDE/PDPTE, an EPTP with A/D, UC, WB or a 5-level walk. Advanced
    /// exit information and MBEC never matter here: their qualification bits are masked unless both
    /// sides have them, and the oracle never sets the MBEC control. MAXPHYADDR is checked per case
    /// (see <see cref="CasePlanner"/>).
    /// </summary>
    public string? Mismatch(CpuCapabilities wanted, CaseFeatureUse use)
    {
        var have = Capabilities;
        var differences = new List<string>();
        void Check(string name, bool caseValue, bool ours, bool used, string where)
        {
            if (caseValue != ours && used)
            {
                differences.Add($"{name}={(caseValue ? 1 : 0)} (emulated: {(ours ? 1 : 0)}) and the case has {where}");
            }
        }

        Check("exec-only", wanted.ExecuteOnly, have.ExecuteOnly, use.ExecuteOnlyEntry, "an execute-only entry");
        Check("page2m", wanted.Page2M, have.Page2M, use.LargePde, "a PDE with bit 7 set");
        Check("page1g", wanted.Page1G, have.Page1G, use.LargePdpte, "a PDPTE with bit 7 set");
        Check("ad", wanted.AccessedDirty, have.AccessedDirty, use.EptpAccessedDirty, "an EPTP with A/D enabled");
        Check("walk5", wanted.Walk5, have.Walk5, use.EptpWalk5, "an EPTP with a 5-level walk");
        Check("eptp-uc", wanted.EptpUc, have.EptpUc, use.EptpUc, "a UC EPTP");
        Check("eptp-wb", wanted.EptpWb, have.EptpWb, use.EptpWb, "a WB EPTP");
        if (!GuestPage1G)
        {
            differences.Add("the emulated processor has no 1 GiB guest pages (the oracle's guest needs them)");
        }

        return differences.Count == 0 ? null : $"{Engine}: the case's cpu differs from the emulated processor: {string.Join("; ", differences)}";
    }
}

/// <summary>Which capability-dependent features a case uses (EPT entries its walks reach, EPTPs it loads).</summary>
public readonly record struct CaseFeatureUse(
    bool ExecuteOnlyEntry, bool LargePde, bool LargePdpte, bool EptpAccessedDirty, bool EptpWalk5, bool EptpUc, bool EptpWb);

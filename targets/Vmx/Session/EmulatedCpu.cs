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
    /// Why a case on <paramref name="wanted"/> cannot be compared with this processor, or null.
    /// Every capability that changes an EPT verdict must match; MAXPHYADDR is checked per case
    /// (see <see cref="CasePlanner"/>) because most cases never use the bits in between.
    /// </summary>
    public string? Mismatch(CpuCapabilities wanted)
    {
        var have = Capabilities;
        var differences = new List<string>();
        void Check(string name, bool caseValue, bool ours)
        {
            if (caseValue != ours)
            {
                differences.Add($"{name}={(caseValue ? 1 : 0)} (emulated: {(ours ? 1 : 0)})");
            }
        }

        Check("exec-only", wanted.ExecuteOnly, have.ExecuteOnly);
        Check("page2m", wanted.Page2M, have.Page2M);
        Check("page1g", wanted.Page1G, have.Page1G);
        Check("ad", wanted.AccessedDirty, have.AccessedDirty);
        Check("mbec", wanted.Mbec, have.Mbec);
        Check("walk5", wanted.Walk5, have.Walk5);
        Check("adv-exit-info", wanted.AdvancedExitInfo, have.AdvancedExitInfo);
        Check("eptp-uc", wanted.EptpUc, have.EptpUc);
        Check("eptp-wb", wanted.EptpWb, have.EptpWb);
        if (!GuestPage1G)
        {
            differences.Add("the emulated processor has no 1 GiB guest pages (the oracle's guest needs them)");
        }

        return differences.Count == 0 ? null : $"{Engine}: the case's cpu differs from the emulated processor: {string.Join(", ", differences)}";
    }
}

using EptFuzz.Reference.Rules;

namespace EptFuzz.Reference;

/// <summary>
/// The checks VM entry makes on the EPTP and the EPT-related controls ("enable EPT" = 1).
/// Any failure makes VM entry fail with VMfailValid, VM-instruction error 7.
/// See: "VM-Execution Control Fields" (§26.2.1.1).
/// </summary>
public static class VmEntryChecks
{
    public static VmEntryVerdict Check(ProcessorCapabilities capabilities, Eptp eptp, VmExecutionControls controls)
    {
        ArgumentNullException.ThrowIfNull(capabilities);
        var fired = RuleSet.Empty.With(RuleId.Eptp1).With(RuleId.EptCap1);
        bool ok = true;

        // EPTP-CHK-1: bits 2:0 must name a memory type the processor allows for EPT paging
        // structures: UC (0) only with CAP[8], WB (6) only with CAP[14]; every other value fails.
        bool typeAllowed = eptp.MemoryType switch
        {
            0 => capabilities.EptpUncacheable,
            6 => capabilities.EptpWriteBack,
            _ => false,
        };
        if (!typeAllowed)
        {
            ok = false;
            fired = fired.With(RuleId.EptpChk1);
        }

        // EPTP-CHK-2: bits 5:3 (walk length minus 1) must be a supported length: 3 with CAP[6],
        // 4 with CAP[7] (5-level EPT, newer editions); anything else fails.
        bool lengthAllowed = eptp.PageWalkLengthMinus1 switch
        {
            3 => capabilities.PageWalkLength4,
            4 => capabilities.PageWalkLength5,
            _ => false,
        };
        if (!lengthAllowed)
        {
            ok = false;
            fired = fired.With(RuleId.EptpChk2);
        }

        // EPTP-CHK-3: bit 6 (EPT A/D) may be 1 only if CAP[21] reports A/D flags.
        if (eptp.AccessedDirtyEnabled && !capabilities.AccessedDirtyFlags)
        {
            ok = false;
            fired = fired.With(RuleId.EptpChk3);
        }

        // EPTP-CHK-4: bit 7 (supervisor shadow-stack control, newer editions) may be 1 only if
        // the processor supports it (CAP[23]). Sources disagree (ept-rules.md §18 item 1: KVM and
        // a reading of the 092 check list still reject all of 11:7); the model follows the SDM's
        // EPTP table, which defines bit 7, and rejects it only without CAP[23].
        if (eptp.SupervisorShadowStackEnabled && !capabilities.SupervisorShadowStackControl)
        {
            ok = false;
            fired = fired.With(RuleId.EptpChk4);
        }

        // EPTP-CHK-5: reserved bits 11:8 and bits 63:N (N = MAXPHYADDR) must be 0.
        if (eptp.ReservedLow != 0 || (eptp.Raw & Bits.Range(63, capabilities.MaxPhysicalAddressWidth)) != 0)
        {
            ok = false;
            fired = fired.With(RuleId.EptpChk5);
        }

        // EPT-MBEC-1: "mode-based execute control for EPT" may be 1 only where the processor allows
        // it (and only with "enable EPT" = 1, which the model always has).
        if (controls.ModeBasedExecuteControl && !capabilities.ModeBasedExecuteControl)
        {
            ok = false;
            fired = fired.With(RuleId.EptMbec1);
        }

        return new VmEntryVerdict(ok, fired);
    }
}

using EptFuzz.Contract;
using EptFuzz.Targets.Vmx.Image;
using EptFuzz.Targets.Vmx.Runner;

namespace EptFuzz.Targets.Vmx.Session;

/// <summary>
/// Turns the kernel's records into observations with the meanings of SEMANTICS.md, mapping
/// reported addresses back to the case's through the tags and the relocation table. Anything the
/// kernel should have printed but did not is an infrastructure failure, never a finding.
/// </summary>
internal sealed class ObservationDecoder(string target, OracleReport report, Relocation relocation, CpuCapabilities caseCpu, EmulatedCpu cpu, ulong windowBase, int guestWindowSlot, IReadOnlySet<ulong> ambiguousSizePages)
{
    private const int ReasonException = 0;
    private const int ReasonVmcall = 18;
    private const int ReasonEptViolation = 48;
    private const int ReasonEptMisconfiguration = 49;
    private const int ReasonPreemptionTimer = 52;
    private const uint InvalidControlField = 7;

    /// <summary>What each probe decoded so far observed, by plan id (probes are decoded in case order).</summary>
    private readonly Dictionary<int, Observation> answers = [];
    private readonly Dictionary<int, int> steps = [];

    public Observation Decode(ProbePlan plan)
    {
        var observation = DecodeProbe(plan);
        answers[plan.Id] = observation;
        steps[plan.Id] = plan.Probe.Step;
        return observation;
    }

    private Observation DecodeProbe(ProbePlan plan)
    {
        if (plan.Unsupported is string reason)
        {
            return Observation.Unsupported(reason);
        }

        if (plan.Known is Observation known)
        {
            return known;
        }

        if (plan.Dumped)
        {
            return DecodeDump(plan);
        }

        if (report.EntryFailures.TryGetValue((ulong)plan.Id, out uint error))
        {
            if (error != InvalidControlField)
            {
                throw Fail(plan, $"VM entry failed with VM-instruction error {error} (only 7, invalid control field, comes from the case's EPTP)");
            }

            return plan.Probe.Kind == ProbeKind.VmEntry
                ? new Observation { Kind = OutcomeKind.VmEntry, VmEntryOk = false }
                : new Observation { Kind = OutcomeKind.NoVmEntry };
        }

        if (!report.Exits.TryGetValue((ulong)plan.Id, out var exit))
        {
            throw Fail(plan, "the kernel printed no record for this probe");
        }

        if (exit.EntryFailure)
        {
            throw Fail(plan, $"VM entry failed on guest state (exit reason 0x{exit.Reason:x}, qualification {exit.Qualification})");
        }

        bool ownAccess = AboutOraclesOwnAccess(plan, exit);
        if (plan.Probe.Kind == ProbeKind.VmEntry)
        {
            // Any VM exit but a failed entry means the entry itself succeeded; an EPT exit on the
            // window is the guest then failing to fetch the oracle's VMCALL through the case's
            // tables (the window hangs below one of the case's PML4 entries).
            return exit.BasicReason == ReasonVmcall || (ownAccess && exit.BasicReason is ReasonEptViolation or ReasonEptMisconfiguration)
                ? new Observation { Kind = OutcomeKind.VmEntry, VmEntryOk = true }
                : throw Fail(plan, $"the VM-entry probe exited with reason {exit.BasicReason} (qualification 0x{exit.Qualification:x}, GPA 0x{exit.GuestPhysical:x}), not VMCALL");
        }

        if (ownAccess)
        {
            return Observation.Unsupported($"the oracle's guest could not run its own code through the case's tables (exit {exit.BasicReason}, qualification 0x{exit.Qualification:x}, GPA 0x{exit.GuestPhysical:x}, GLA 0x{exit.GuestLinear:x}, interruption 0x{exit.InterruptionInfo:x} error 0x{exit.InterruptionErrorCode:x})");
        }

        // A fetch that landed somewhere the planner did not foresee runs whatever is there: it may
        // fault or spin until the preemption timer fires. Either way nothing tells where it went.
        // A fault of the fetch itself names the fetched address (CR2, or the guest-linear address).
        bool fetchRanAway = plan.Probe.Access.Kind == AccessKind.Fetch && exit.BasicReason switch
        {
            ReasonPreemptionTimer => true,
            ReasonException => (exit.InterruptionInfo & 0xFF) != 14 || exit.Qualification != plan.Probe.Access.Address,
            ReasonEptViolation => (exit.Qualification & 0x80) != 0 && exit.GuestLinear != plan.Probe.Access.Address,
            _ => false,
        };
        if (fetchRanAway)
        {
            return Observation.Unsupported($"the fetch ran something other than the planted code (exit {exit.BasicReason}, interruption 0x{exit.InterruptionInfo:x}, RIP 0x{exit.GuestRip:x})");
        }

        return exit.BasicReason switch
        {
            ReasonVmcall => Translated(plan, exit),
            ReasonEptViolation => Violation(plan, exit),
            ReasonEptMisconfiguration => new Observation { Kind = OutcomeKind.EptMisconfiguration, Gpa = new Gpa(exit.GuestPhysical) },
            ReasonException when (exit.InterruptionInfo & 0x8000_00FF) == 0x8000_000E =>
                new Observation { Kind = OutcomeKind.GuestPageFault, ErrorCode = exit.InterruptionErrorCode },
            _ => throw Fail(plan, $"unexpected exit reason {exit.BasicReason} (interruption info 0x{exit.InterruptionInfo:x}, guest RIP 0x{exit.GuestRip:x})"),
        };
    }

    /// <summary>
    /// Whether an exit is about the oracle's own accesses rather than the probe's: its code, stack
    /// and page tables live in the window (one 1 GiB guest-physical region, reached through one
    /// guest PML4 slot under the case's paging), and under the case's paging the guest also reads
    /// the oracle's entry in the case's guest PML4 page. The guest fetches its code before the probe's
    /// access, so an exit about these is the guest failing to run its code through the case's
    /// tables; a probe's own access never goes there (the planner keeps probes out of the window).
    /// </summary>
    private bool AboutOraclesOwnAccess(ProbePlan plan, ExitRecord exit)
    {
        bool LinearInWindow(ulong linear) => plan.ThroughCasePaging
            ? linear >> 48 == 0 && (int)((linear >> 39) & 0x1FF) == guestWindowSlot
            : (linear & ~(KernelLayout.GigabyteBlock - 1)) == windowBase;
        bool PhysicalInWindow(ulong gpa) =>
            (gpa & ~(KernelLayout.GigabyteBlock - 1)) == windowBase || (plan.GuestWindowEntryGpa is ulong entry && gpa == entry);

        return exit.BasicReason switch
        {
            // A guest fault: CR2 (the qualification of a #PF) names the linear address.
            ReasonException => LinearInWindow(exit.Qualification),
            ReasonEptViolation => ((exit.Qualification & 0x80) != 0 && LinearInWindow(exit.GuestLinear)) || PhysicalInWindow(exit.GuestPhysical),
            ReasonEptMisconfiguration => PhysicalInWindow(exit.GuestPhysical),
            _ => false,
        };
    }

    private Observation DecodeDump(ProbePlan plan)
    {
        if (!report.Dumps.TryGetValue((ulong)plan.Id, out ulong dumped))
        {
            throw Fail(plan, "the kernel printed no entry dump");
        }

        // Earlier probes whose walks may set A/D here but that the oracle did not run or could not
        // observe: the case's walk may have set them, the VM's did not (or did, unseen).
        foreach (int id in plan.EarlierWalkers)
        {
            if (answers[id].Kind == OutcomeKind.Unsupported)
            {
                return Observation.Unsupported($"the oracle did not run or observe an earlier probe (step {steps[id]}) whose walk may set A/D in this entry, so the A/D bits dumped here need not be the case's");
            }
        }

        // The oracle's own code walked this entry (its window hangs below it), which sets A. Only
        // the case's own value, or an earlier probe of the case that walks it and completed (a
        // failed access sets no A/D, SEMANTICS "EPT A/D"), makes A right for the case as well.
        const ulong accessed = EptEntry.Accessed;
        if (plan.OracleWalked && (plan.CaseEntryValue & accessed) == 0 && (dumped & accessed) != 0 &&
            !plan.EarlierWalkers.Any(id => answers[id].Kind == OutcomeKind.Translated))
        {
            return Observation.Unsupported("the oracle's own code walks this entry (its window hangs below it) and set its accessed flag, where no access of the case that walks it completed");
        }

        const ulong accessedDirty = EptEntry.Accessed | EptEntry.Dirty;
        if ((dumped & ~accessedDirty) != (plan.VmEntryValue & ~accessedDirty))
        {
            throw Fail(plan, $"the entry holds 0x{dumped:x}; the kernel wrote 0x{plan.VmEntryValue:x} and hardware may only add A/D");
        }

        // The processor only ever sets A (bit 8) and D (bit 9); the rest is the case's own value.
        return new Observation { Kind = OutcomeKind.Entry, EntryValue = (plan.CaseEntryValue & ~accessedDirty) | (dumped & accessedDirty) };
    }

    private Observation Translated(ProbePlan plan, ExitRecord exit)
    {
        var access = plan.Probe.Access;
        if (access.Kind == AccessKind.Fetch)
        {
            // A VMCALL exit reports the RIP of the VMCALL itself: 5 bytes (mov ebx, id) past the target.
            if (exit.GuestRip != access.Address + 5 || !relocation.TryResolveId((uint)exit.Rbx, out ulong casePage, out var fetchSize))
            {
                return Observation.Unsupported($"the fetch ran something other than the planted code (RBX 0x{exit.Rbx:x}, RIP 0x{exit.GuestRip:x})");
            }

            ulong fetched = casePage | (access.Address & 0xFFF);
            return new Observation { Kind = OutcomeKind.Translated, Hpa = new Hpa(fetched), PageSize = fetchSize, Gpa = FinalGpa(plan, fetched, fetchSize) };
        }

        if (!Tag.TryDecode(exit.Rbx, out ulong tagged, out int sizeCode))
        {
            return Observation.Unsupported("the access read a qword without a tag (data the case wrote there, or a page the planner did not expect to be reached), so nothing tells where it landed");
        }

        if ((tagged & 0xFF8) != (access.Address & 0xFF8))
        {
            throw Fail(plan, $"the tag read back (0x{exit.Rbx:x}) is for another page offset than GPA 0x{access.Address:x}");
        }

        ulong hpa = (tagged & ~7UL) | (access.Address & 7);
        // PageSize 0: "cannot tell" (the page is reached through leaves of two sizes in the VM).
        var size = ambiguousSizePages.Contains(hpa & ~0xFFFUL) ? default : (PageSize)sizeCode;
        return new Observation
        {
            Kind = OutcomeKind.Translated,
            Hpa = new Hpa(hpa),
            PageSize = size,
            Gpa = FinalGpa(plan, hpa, (PageSize)sizeCode),
        };
    }

    /// <summary>
    /// The final GPA: the probe address for guest-physical accesses. Through the case's guest paging
    /// no exit reports it; it is the planner's predicted final GPA when the processor reached exactly
    /// the host-physical address and leaf size that prediction implies, else 0 (unknown).
    /// </summary>
    private static Gpa FinalGpa(ProbePlan plan, ulong hpa, PageSize size)
    {
        if (!plan.ThroughCasePaging)
        {
            return new Gpa(plan.Probe.Access.Address);
        }

        return plan.PredictedFinal is var (gpa, predictedHpa, predictedSize) && predictedHpa == hpa && predictedSize == size ? new Gpa(gpa) : default;
    }

    private Observation Violation(ProbePlan plan, ExitRecord exit)
    {
        // Bits 0-12 are defined for EPT violations; 6 is undefined without MBEC, 9-11 without
        // advanced exit information, so neither is reported unless both sides have the feature.
        ulong qualification = exit.Qualification & 0x1FFF;
        qualification &= ~(1UL << 6);
        if (!(caseCpu.AdvancedExitInfo && cpu.Capabilities.AdvancedExitInfo))
        {
            qualification &= ~0xE00UL;
        }

        // Write probes are a read-modify-write (add 0) so memory keeps the case's contents; for
        // those the SDM leaves bit 0 implementation-specific when bit 1 is set. A plain write's
        // final access has bit 0 clear.
        if (plan.Probe.Access.Kind == AccessKind.Write && (qualification & 0x102) == 0x102)
        {
            qualification &= ~1UL;
        }

        bool linearValid = (qualification & 0x80) != 0;
        return new Observation
        {
            Kind = OutcomeKind.EptViolation,
            Qualification = qualification,
            Gpa = new Gpa(exit.GuestPhysical),
            GuestLinearAddress = linearValid ? exit.GuestLinear : 0,
            GuestLinearAddressValid = linearValid,
        };
    }

    private TargetFailureException Fail(ProbePlan plan, string message) =>
        new(target, $"step {plan.Probe.Step}: {message}");
}

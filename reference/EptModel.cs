using EptFuzz.Reference.Rules;

namespace EptFuzz.Reference;

/// <summary>
/// The executable model of the SDM's EPT rules: pure, deterministic functions of explicit inputs.
/// Memory is only read; the A/D writes an evaluation makes are returned for the caller to apply.
/// </summary>
public static class EptModel
{
    /// <summary>
    /// One guest access, from VM entry to its outcome: the VM-entry gate, then (for a linear
    /// address with guest paging on) the guest's 4-level walk with every guest-entry access
    /// translated through EPT, then the EPT translation of the final guest-physical address.
    /// </summary>
    public static Evaluation Evaluate(TranslationRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        VmEntryVerdict entry = VmEntryChecks.Check(request.Capabilities, request.Eptp, request.Controls);
        if (!entry.Succeeds)
        {
            return new Evaluation(VmEntryFailed.Instance, [], [], entry.Fired);
        }

        return new Evaluator(request, entry.Fired).Run();
    }

    /// <summary>The VM-entry verdict for this EPTP and these controls (EPTP-CHK-1 … 5, EPT-MBEC-1).</summary>
    public static VmEntryVerdict CheckVmEntry(ProcessorCapabilities capabilities, Eptp eptp, VmExecutionControls controls) =>
        VmEntryChecks.Check(capabilities, eptp, controls);

    /// <summary>
    /// The EPT entry at <paramref name="level"/> on the walk for <paramref name="gpa"/>, reached the
    /// way the walk would reach it: from EPTP[51:12], through present entries that reference a
    /// table. The walk stops at a not-present entry (EPT-PRESENT-1 under the given MBEC control)
    /// or at a PDPTE/PDE with bit 7 = 1. Misconfigurations are not checked and nothing is written.
    /// A level above the EPTP's walk length, or an EPTP whose bits 5:3 encode no walk length, is
    /// not reached.
    /// </summary>
    public static EntryLookup FindEntry(Eptp eptp, VmExecutionControls controls, IPhysicalMemory memory, Gpa gpa, Level level)
    {
        ArgumentNullException.ThrowIfNull(memory);
        int levels = eptp.Levels;
        if ((int)level > levels || level < Level.Pte)
        {
            return default;
        }

        ulong table = eptp.Root.Value;
        for (var current = (Level)levels; ; current--)
        {
            var address = new Hpa(table | (LevelGeometry.Index(gpa.Value, current) * 8));
            var entry = new EptEntry(memory.Read(address));
            if (current == level)
            {
                return new EntryLookup(true, address, entry.Raw);
            }

            if (!EptEntryFormat.IsPresent(entry, controls.ModeBasedExecuteControl) || EptEntryFormat.IsLeaf(entry, current))
            {
                return default;
            }

            table = entry.Address;
        }
    }
}

using EptFuzz.Reference.Rules;

namespace EptFuzz.Reference;

/// <summary>
/// The state of one evaluation: the inputs, the entries read so far, the A/D writes made so far
/// (later reads see them: the caller's memory is never written) and the rules that fired.
/// </summary>
internal sealed partial class Evaluator
{
    private readonly ProcessorCapabilities capabilities;
    private readonly Eptp eptp;
    private readonly GuestPagingState guest;
    private readonly IPhysicalMemory memory;
    private readonly GuestAccess access;
    private readonly bool mbec;
    private readonly bool accessedDirty;
    private readonly List<WalkStep> walk = new(24);
    private readonly List<PhysicalWrite> writes = new(8);
    private RuleSet fired;

    public Evaluator(TranslationRequest request, RuleSet fired)
    {
        capabilities = request.Capabilities;
        eptp = request.Eptp;
        guest = request.Guest;
        memory = request.Memory;
        access = request.Access;
        mbec = request.Controls.ModeBasedExecuteControl;
        accessedDirty = eptp.AccessedDirtyEnabled;
        this.fired = fired;
    }

    public Evaluation Run()
    {
        // See: "EPT Overview" (§28.2.1), EPT-SCOPE-2: with CR0.PG = 0 every linear address is a
        // guest-physical address; with paging on, the guest's paging-structure entries and the
        // final output of its walk are guest-physical addresses, each translated by EPT.
        Fire(RuleId.EptScope2);
        AccessOutcome outcome = access.Linear && guest.Paging ? TranslateLinear() : TranslateWithoutPaging();
        return new Evaluation(outcome, walk, writes, fired);
    }

    private void Fire(RuleId rule) => fired = fired.With(rule);

    /// <summary>Reads host memory as it stands after the writes this evaluation already made.</summary>
    private ulong Read(Hpa address)
    {
        for (int i = writes.Count - 1; i >= 0; i--)
        {
            if (writes[i].Address == address)
            {
                return writes[i].Value;
            }
        }

        return memory.Read(address);
    }

    /// <summary>
    /// An access with CR0.PG = 0 (a guest-physical probe, or any access while guest paging is off):
    /// the linear address is the guest-physical address.
    /// </summary>
    private AccessOutcome TranslateWithoutPaging()
    {
        // See: "Exit Qualification for EPT Violations" (Table 27-7), EPT-EXITQ-1 bits 9-11 and
        // EPT-MBEC-3: with CR0.PG = 0 every linear address is a user-mode address of a
        // read/write, executable page.
        var request = GpaAccess.ForFinal(new Gpa(access.Address), access.Type, new Gla(access.Address),
            userModeAddress: true, readWritePage: true, executeDisablePage: false, capabilities.AdvancedExitInformation);

        // See: "Memory Type Used for Translated Guest-Physical Addresses" (§28.2.6.2), EPT-MT-2:
        // the PAT type of an access with CR0.PG = 0 is WB.
        return TranslateFinal(request, MemoryType.WB);
    }

    /// <summary>EPT-translates the final guest-physical address and types the access.</summary>
    private AccessOutcome TranslateFinal(in GpaAccess request, MemoryType patType)
    {
        Fire(RuleId.EptMt2);
        AccessOutcome? failure = TranslateGpa(request, out EptTranslation translation);
        if (failure is not null)
        {
            return failure;
        }

        // See: "EPT Translation Mechanism" (§28.2.2), EPT-WALK-2: the leaf supplies the physical
        // address above the page offset; the GPA supplies the offset.
        Fire(RuleId.EptWalk2);
        if (translation.Size != PageSize.Size4K)
        {
            Fire(RuleId.EptLarge1);
        }

        return new Translated(translation.Hpa, request.Gpa, translation.Size, EffectiveMemoryType(translation.Leaf, patType), translation.Permissions);
    }

    /// <summary>
    /// See: "Memory Type Used for Translated Guest-Physical Addresses" (§28.2.6.2), EPT-MT-3/4/5.
    /// </summary>
    private MemoryType EffectiveMemoryType(EptEntry leaf, MemoryType patType)
    {
        // EPT-MT-3: the EPT memory type is the leaf's bits 5:3 (validated by the walk).
        Fire(RuleId.EptMt3);
        var eptType = (MemoryType)leaf.MemoryType;

        // EPT-MT-4: CR0.CD = 1 makes every access UC, whatever EPT and PAT say.
        if (guest.CacheDisable)
        {
            Fire(RuleId.EptMt4);
            return MemoryType.UC;
        }

        // EPT-MT-4: with "ignore PAT" (bit 6) set the EPT memory type is used as it is.
        if (leaf.IgnorePat)
        {
            Fire(RuleId.EptMt4);
            return eptType;
        }

        // EPT-MT-5: otherwise the EPT type combines with the PAT type as an MTRR type would.
        Fire(RuleId.EptMt5);
        return MemoryTyping.Combine(eptType, patType);
    }
}

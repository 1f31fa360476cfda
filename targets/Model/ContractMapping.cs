using EptFuzz.Contract;
using Ref = EptFuzz.Reference;

namespace EptFuzz.Targets.Model;

/// <summary>Converts between the contract's plain data and the model's types.</summary>
internal static class ContractMapping
{
    /// <summary>
    /// The contract's capabilities have no "page-walk length 4" (CAP[6]) or "supervisor
    /// shadow-stack control" (CAP[23]) bit: SEMANTICS.md accepts walk length 4 always and rejects
    /// EPTP bit 7 always, which is CAP[6] = 1 and CAP[23] = 0.
    /// </summary>
    public static Ref.ProcessorCapabilities ToModel(CpuCapabilities cpu) => new()
    {
        MaxPhysicalAddressWidth = cpu.MaxPhyAddr,
        ExecuteOnly = cpu.ExecuteOnly,
        PageWalkLength4 = true,
        PageWalkLength5 = cpu.Walk5,
        EptpUncacheable = cpu.EptpUc,
        EptpWriteBack = cpu.EptpWb,
        Pde2MPages = cpu.Page2M,
        Pdpte1GPages = cpu.Page1G,
        AccessedDirtyFlags = cpu.AccessedDirty,
        AdvancedExitInformation = cpu.AdvancedExitInfo,
        SupervisorShadowStackControl = false,
        ModeBasedExecuteControl = cpu.Mbec,
    };

    /// <summary>Guest paging as SEMANTICS.md fixes it: 4-level, CR0.CD = 0.</summary>
    public static Ref.GuestPagingState ToModel(GuestPaging paging) => new()
    {
        Paging = paging.Enabled,
        Cr3 = paging.Cr3.Value,
        WriteProtect = paging.Wp,
        NoExecuteEnable = paging.Nxe,
        Smep = paging.Smep,
        Pat = paging.Pat,
        CacheDisable = false,
    };

    /// <summary>A gpa probe is an access with CR0.PG = 0 (the model ignores paging for non-linear accesses).</summary>
    public static Ref.GuestAccess ToModel(Access access) =>
        new(ToModel(access.Kind), access.Address, access.Linear, access.Cpl);

    private static Ref.AccessType ToModel(AccessKind kind) => kind switch
    {
        AccessKind.Read => Ref.AccessType.Read,
        AccessKind.Write => Ref.AccessType.Write,
        AccessKind.Fetch => Ref.AccessType.InstructionFetch,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown access kind"),
    };

    public static RuleBits ToContract(Ref.Rules.RuleSet set) => new(set.W0, set.W1, set.W2, set.W3);

    public static Observation ToObservation(Ref.Evaluation evaluation)
    {
        var walk = new WalkEntry[evaluation.Walk.Count];
        for (int i = 0; i < walk.Length; i++)
        {
            Ref.WalkStep step = evaluation.Walk[i];
            walk[i] = new WalkEntry(
                step.Structure == Ref.Structure.Ept ? WalkStructure.Ept : WalkStructure.Guest,
                (EptLevel)(byte)step.Level,
                new Hpa(step.Address.Value),
                step.Value,
                step.Translating);
        }

        var writes = new MemoryWrite[evaluation.Writes.Count];
        for (int i = 0; i < writes.Length; i++)
        {
            writes[i] = new MemoryWrite(new Hpa(evaluation.Writes[i].Address.Value), evaluation.Writes[i].Value);
        }

        RuleBits rules = ToContract(evaluation.Fired);
        return evaluation.Outcome switch
        {
            Ref.Translated t => new Observation
            {
                Kind = OutcomeKind.Translated,
                Hpa = new Hpa(t.Hpa.Value),
                Gpa = new Gpa(t.Gpa.Value),
                PageSize = (PageSize)(byte)t.PageSize,
                MemoryType = (MemoryType)(byte)t.MemoryType,
                Permissions = (EptPermissions)(byte)t.Permissions,
                Walk = walk,
                Writes = writes,
                Rules = rules,
            },
            Ref.EptViolation v => new Observation
            {
                Kind = OutcomeKind.EptViolation,
                Qualification = v.Qualification.Value,
                Gpa = new Gpa(v.Gpa.Value),
                GuestLinearAddress = v.GuestLinearAddress.Value,
                GuestLinearAddressValid = v.GuestLinearAddressValid,
                Walk = walk,
                Writes = writes,
                Rules = rules,
            },
            Ref.EptMisconfiguration m => new Observation
            {
                Kind = OutcomeKind.EptMisconfiguration,
                Gpa = new Gpa(m.Gpa.Value),
                Walk = walk,
                Writes = writes,
                Rules = rules,
            },
            Ref.GuestPageFault f => new Observation
            {
                Kind = OutcomeKind.GuestPageFault,
                ErrorCode = f.ErrorCode,
                Walk = walk,
                Writes = writes,
                Rules = rules,
            },
            Ref.VmEntryFailed => new Observation { Kind = OutcomeKind.NoVmEntry, Rules = rules },
            _ => throw new InvalidOperationException($"unknown model outcome {evaluation.Outcome.GetType().Name}"),
        };
    }
}

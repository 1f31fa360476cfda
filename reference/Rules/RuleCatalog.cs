namespace EptFuzz.Reference.Rules;

/// <summary>
/// A rule of shared/spec/ept-rules.md: its id as the spec writes it, the SDM section (title first;
/// numbers are those of the June 2016 edition unless marked newer), and, when the model leaves it
/// out, why. <see cref="NotModelledReason"/> null means the model implements the rule and an
/// evaluation reports it in <see cref="RuleSet"/> when it decides an outcome.
/// </summary>
public sealed record RuleInfo(RuleId Id, string Name, string Section, string? NotModelledReason)
{
    public bool Modelled => NotModelledReason is null;
}

/// <summary>Every rule id of ept-rules.md, in index order.</summary>
public static class RuleCatalog
{
    private const string NoCaching = "the model never caches translations, so there is nothing to tag, use or invalidate";
    private const string NoVe = "the model has no \"EPT-violation #VE\" control; every violation is reported as a VM exit";
    private const string NoTertiary = "the model has no tertiary controls (HLAT, paging-write, guest-paging verification) and no SPP control; the entry bits they give meaning to are ignored (EPT-ENTRY-6)";

    public static IReadOnlyList<RuleInfo> All { get; } =
    [
        new(RuleId.EptScope1, "EPT-SCOPE-1", "\"EPT Overview\" §28.2.1", "the model always evaluates with \"enable EPT\" = 1 and secondary controls active; there is no input that turns EPT off"),
        new(RuleId.EptScope2, "EPT-SCOPE-2", "\"EPT Overview\" §28.2.1", null),
        new(RuleId.EptScope3, "EPT-SCOPE-3", "\"EPT Overview\" §28.2.1", "guest paging is off or 4-level; there is no PAE paging and no MOV to CR3, so no PDPTE-register loads"),
        new(RuleId.Eptp1, "EPTP-1", "\"Extended-Page-Table Pointer (EPTP)\" §24.6.11", null),
        new(RuleId.Eptp2, "EPTP-2", "\"Creating and Using Cached Translation Information\" §28.3.2", NoCaching),
        new(RuleId.EptpChk1, "EPTP-CHK-1", "\"VM-Execution Control Fields\" §26.2.1.1", null),
        new(RuleId.EptpChk2, "EPTP-CHK-2", "\"VM-Execution Control Fields\" §26.2.1.1", null),
        new(RuleId.EptpChk3, "EPTP-CHK-3", "\"VM-Execution Control Fields\" §26.2.1.1", null),
        new(RuleId.EptpChk4, "EPTP-CHK-4", "\"VM-Execution Control Fields\" §26.2.1.1 (newer EPTP bit 7)", null),
        new(RuleId.EptpChk5, "EPTP-CHK-5", "\"VM-Execution Control Fields\" §26.2.1.1", null),
        new(RuleId.EptpChk6, "EPTP-CHK-6", "\"VM-Execution Control Fields\" §26.2.1.1", "the only dependent control the model has is MBEC, whose check is EPT-MBEC-1; unrestricted guest, PML, #VE and VM functions are not inputs"),
        new(RuleId.EptCap1, "EPT-CAP-1", "\"VPID and EPT Capabilities\" App. A.10", null),
        new(RuleId.EptWalk1, "EPT-WALK-1", "\"EPT Translation Mechanism\" §28.2.2", null),
        new(RuleId.EptWalk2, "EPT-WALK-2", "\"EPT Translation Mechanism\" §28.2.2", null),
        new(RuleId.EptWalk3, "EPT-WALK-3", "\"EPT Translation Mechanism\" (newer §x.3.2, 5-level EPT)", null),
        new(RuleId.EptWalk4, "EPT-WALK-4", "\"EPT Translation Mechanism\" (newer §x.3.2)", null),
        new(RuleId.EptEntry1, "EPT-ENTRY-1", "\"EPT Translation Mechanism\" §28.2.2, Table 28-1", null),
        new(RuleId.EptEntry2, "EPT-ENTRY-2", "\"EPT Translation Mechanism\" §28.2.2, Tables 28-3 and 28-5", null),
        new(RuleId.EptEntry3, "EPT-ENTRY-3", "\"EPT Translation Mechanism\" §28.2.2, Table 28-2", null),
        new(RuleId.EptEntry4, "EPT-ENTRY-4", "\"EPT Translation Mechanism\" §28.2.2, Table 28-4", null),
        new(RuleId.EptEntry5, "EPT-ENTRY-5", "\"EPT Translation Mechanism\" §28.2.2, Table 28-6", null),
        new(RuleId.EptEntry6, "EPT-ENTRY-6", "\"EPT Translation Mechanism\" §28.2.2 (ignored bits)", null),
        new(RuleId.EptPresent1, "EPT-PRESENT-1", "\"EPT Translation Mechanism\" §28.2.2", null),
        new(RuleId.EptPresent2, "EPT-PRESENT-2", "\"EPT Translation Mechanism\" §28.2.2", null),
        new(RuleId.EptMisconfig1, "EPT-MISCONFIG-1", "\"EPT Misconfigurations\" §28.2.3.1", null),
        new(RuleId.EptMisconfig2, "EPT-MISCONFIG-2", "\"EPT Misconfigurations\" §28.2.3.1", null),
        new(RuleId.EptMisconfig3, "EPT-MISCONFIG-3", "\"EPT Misconfigurations\" (newer §x.3.3.1)", null),
        new(RuleId.EptMisconfig4, "EPT-MISCONFIG-4", "\"EPT Misconfigurations\" §28.2.3.1", null),
        new(RuleId.EptMisconfig5, "EPT-MISCONFIG-5", "\"EPT Misconfigurations\" §28.2.3.1", null),
        new(RuleId.EptMisconfig6, "EPT-MISCONFIG-6", "\"EPT Misconfigurations\" §28.2.3.1", null),
        new(RuleId.EptMisconfig7, "EPT-MISCONFIG-7", "\"EPT Misconfigurations\" (newer, paging-write control)", NoTertiary),
        new(RuleId.EptMisconfig8, "EPT-MISCONFIG-8", "\"EPT Misconfigurations\" §28.2.3.1; \"Basic VM-Exit Information\" §27.2.1", null),
        new(RuleId.EptMisconfig9, "EPT-MISCONFIG-9", "\"EPT Misconfigurations\" §28.2.3.1", "advice to software (misconfigured values are reserved for future use); it changes no outcome on a given processor"),
        new(RuleId.EptAccess1, "EPT-ACCESS-1", "\"EPT Violations\" §28.2.3.2, Table 27-7", null),
        new(RuleId.EptViol1, "EPT-VIOL-1", "\"EPT Violations\" §28.2.3.2", null),
        new(RuleId.EptViol2, "EPT-VIOL-2", "\"EPT Violations\" §28.2.3.2", null),
        new(RuleId.EptViol3, "EPT-VIOL-3", "\"EPT Violations\" §28.2.3.2", null),
        new(RuleId.EptViol4, "EPT-VIOL-4", "\"EPT Violations\" §28.2.3.2", null),
        new(RuleId.EptViol5, "EPT-VIOL-5", "\"EPT Violations\" §28.2.3.2", null),
        new(RuleId.EptViol6, "EPT-VIOL-6", "\"EPT Violations\" (newer §x.3.3.2)", null),
        new(RuleId.EptViol7, "EPT-VIOL-7", "\"Basic VM-Exit Information\" §27.2.1", "accesses are single reads, writes or fetches; read-modify-write instructions are not an access kind, and their bit 0 is implementation-specific anyway"),
        new(RuleId.EptOrder1, "EPT-ORDER-1", "\"Prioritization of EPT Misconfigurations and EPT Violations\" §28.2.3.3", null),
        new(RuleId.EptOrder1a, "EPT-ORDER-1a", "\"Prioritization of EPT Misconfigurations and EPT Violations\" §28.2.3.3", null),
        new(RuleId.EptOrder2, "EPT-ORDER-2", "\"Prioritization of EPT Misconfigurations and EPT Violations\" §28.2.3.3", null),
        new(RuleId.EptOrder3, "EPT-ORDER-3", "\"Prioritization of EPT Misconfigurations and EPT Violations\" §28.2.3.3", null),
        new(RuleId.EptGwalk1, "EPT-GWALK-1", "\"EPT Violations\" §28.2.3.2, Table 27-7 note 1", null),
        new(RuleId.EptGwalk2, "EPT-GWALK-2", "\"EPT Violations\" §28.2.3.2", null),
        new(RuleId.EptGwalk3, "EPT-GWALK-3", "\"EPT Violations\" §28.2.3.2", "no PAE paging, so no PDPTE-register loads"),
        new(RuleId.EptGwalk4, "EPT-GWALK-4", "\"Memory Type Used for Translated Guest-Physical Addresses\" §28.2.6.2", "the model reports the memory type of the final access only, not of guest paging-structure accesses"),
        new(RuleId.EptMbec1, "EPT-MBEC-1", "\"VM-Execution Control Fields\" (mode-based execute control)", null),
        new(RuleId.EptMbec2, "EPT-MBEC-2", "\"EPT Translation Mechanism\" (mode-based execute control)", null),
        new(RuleId.EptMbec3, "EPT-MBEC-3", "\"EPT Violations\" (mode-based execute control)", null),
        new(RuleId.EptMbec4, "EPT-MBEC-4", "\"EPT Violations\" (mode-based execute control)", null),
        new(RuleId.EptMbec5, "EPT-MBEC-5", "\"EPT Translation Mechanism\" / \"EPT Misconfigurations\" (mode-based execute control)", null),
        new(RuleId.EptMbec6, "EPT-MBEC-6", "\"Exit Qualification for EPT Violations\" (bit 6)", null),
        new(RuleId.EptMbec7, "EPT-MBEC-7", "\"Guidelines for Use of the INVEPT Instruction\" §28.3.3.4", NoCaching),
        new(RuleId.EptXo1, "EPT-XO-1", "\"EPT Translation Mechanism\" §28.2.2; App. A.10", null),
        new(RuleId.EptLarge1, "EPT-LARGE-1", "\"EPT Translation Mechanism\" §28.2.2", null),
        new(RuleId.EptLarge2, "EPT-LARGE-2", "\"Guidelines for Use of the INVEPT Instruction\" §28.3.3.4", NoCaching),
        new(RuleId.EptAd1, "EPT-AD-1", "\"Accessed and Dirty Flags for EPT\" §28.2.4", null),
        new(RuleId.EptAd2, "EPT-AD-2", "\"Accessed and Dirty Flags for EPT\" §28.2.4", null),
        new(RuleId.EptAd3, "EPT-AD-3", "\"Accessed and Dirty Flags for EPT\" §28.2.4", null),
        new(RuleId.EptAd4, "EPT-AD-4", "\"Accessed and Dirty Flags for EPT\" §28.2.4", null),
        new(RuleId.EptAd5, "EPT-AD-5", "\"Accessed and Dirty Flags for EPT\" §28.2.4", null),
        new(RuleId.EptAd6, "EPT-AD-6", "\"Accessed and Dirty Flags for EPT\" §28.2.4; \"Page-Modification Logging\" §28.2.5", null),
        new(RuleId.EptAd7, "EPT-AD-7", "\"Guidelines for Use of the INVEPT Instruction\" §28.3.3.4", NoCaching),
        new(RuleId.EptPml1, "EPT-PML-1", "\"Page-Modification Logging\" §28.2.5", "the model has no \"enable PML\" control, PML index or PML address"),
        new(RuleId.EptMt1, "EPT-MT-1", "\"Memory Type Used for Accessing EPT Paging Structures\" §28.2.6.1", "the model reports the memory type of the final access only, not of EPT paging-structure accesses"),
        new(RuleId.EptMt2, "EPT-MT-2", "\"Memory Type Used for Translated Guest-Physical Addresses\" §28.2.6.2", null),
        new(RuleId.EptMt3, "EPT-MT-3", "\"Memory Type Used for Translated Guest-Physical Addresses\" §28.2.6.2", null),
        new(RuleId.EptMt4, "EPT-MT-4", "\"Memory Type Used for Translated Guest-Physical Addresses\" §28.2.6.2", null),
        new(RuleId.EptMt5, "EPT-MT-5", "\"Selecting Memory Types for Pentium Pro and More Recent Processor Families\" Vol 3A §11.5.2.2, Table 11-7", null),
        new(RuleId.EptExitq1, "EPT-EXITQ-1", "\"Exit Qualification for EPT Violations\" §27.2.1, Table 27-7", null),
        new(RuleId.EptExitq2, "EPT-EXITQ-2", "\"Exit Qualification for EPT Violations\" §27.2.1, Table 27-7", null),
        new(RuleId.EptExitq3, "EPT-EXITQ-3", "\"Exit Qualification for EPT Violations\" §27.2.1, Table 27-7 (bit 12)", "no NMIs or IRET in the model; bit 12 is always 0"),
        new(RuleId.EptExit1, "EPT-EXIT-1", "\"Basic VM-Exit Information\" §27.2.1", null),
        new(RuleId.EptExit2, "EPT-EXIT-2", "\"Exit Qualification for EPT Violations\" (newer, advanced information)", null),
        new(RuleId.EptVe1, "EPT-VE-1", "\"Convertible EPT Violations\" §25.5.6.1", NoVe),
        new(RuleId.EptVe2, "EPT-VE-2", "\"Convertible EPT Violations\" §25.5.6.1", NoVe),
        new(RuleId.EptVe3, "EPT-VE-3", "\"Convertible EPT Violations\" §25.5.6.1", NoVe),
        new(RuleId.EptVe4, "EPT-VE-4", "\"Virtualization-Exception Information\" §25.5.6.2", NoVe),
        new(RuleId.EptSss1, "EPT-SSS-1", "\"EPT Translation Mechanism\" (newer, supervisor shadow-stack control)", null),
        new(RuleId.EptSss2, "EPT-SSS-2", "\"EPT Violations\" (newer, supervisor shadow-stack control)", "the model has no shadow-stack accesses"),
        new(RuleId.EptSpp1, "EPT-SPP-1", "\"Sub-Page Write Permissions\" (newer)", NoTertiary),
        new(RuleId.EptPw1, "EPT-PW-1", "\"EPT Paging-Write Control\" (newer)", NoTertiary),
        new(RuleId.EptGpv1, "EPT-GPV-1", "\"Guest-Paging Verification\" (newer)", NoTertiary),
        new(RuleId.EptCache1, "EPT-CACHE-1", "\"Information That May Be Cached\" §28.3.1", NoCaching),
        new(RuleId.EptCache2, "EPT-CACHE-2", "\"Creating and Using Cached Translation Information\" §28.3.2", NoCaching),
        new(RuleId.EptCache3, "EPT-CACHE-3", "\"Creating and Using Cached Translation Information\" §28.3.2", NoCaching),
        new(RuleId.EptCache4, "EPT-CACHE-4", "\"Operations that Invalidate Cached Mappings\" §28.3.3.1", NoCaching),
        new(RuleId.EptInvept1, "EPT-INVEPT-1", "\"INVEPT — Invalidate Translations Derived from EPT\" ch. 30", "INVEPT is an instruction of the hypervisor, not a translation; for a translator that never caches it changes nothing"),
        new(RuleId.EptInvept2, "EPT-INVEPT-2", "\"INVEPT — Invalidate Translations Derived from EPT\" ch. 30", "INVEPT's fault and VMfail checks are not modelled (the model runs no instructions)"),
        new(RuleId.EptInvept3, "EPT-INVEPT-3", "\"INVEPT — Invalidate Translations Derived from EPT\" ch. 30", "INVEPT's descriptor checks are not modelled; invalidation is moot without caching"),
        new(RuleId.EptInvept4, "EPT-INVEPT-4", "\"Guidelines for Use of the INVEPT Instruction\" §28.3.3.4", NoCaching),
        new(RuleId.EptInvept5, "EPT-INVEPT-5", "\"Guidelines for Use of the INVEPT Instruction\" §28.3.3.4", NoCaching),
        new(RuleId.EptVmfunc1, "EPT-VMFUNC-1", "\"EPTP Switching\" §25.5.5.3", "the model has no VM functions; the EPTP is an input"),
    ];

    /// <summary>The textual ids in index order (what a target reports as its rule names).</summary>
    public static IReadOnlyList<string> Names { get; } = All.Select(r => r.Name).ToArray();

    public static RuleInfo Get(RuleId id) => All[(int)id];

    /// <summary>Every rule the model implements: the set the tests must see fire.</summary>
    public static RuleSet Modelled { get; } = All.Where(r => r.Modelled).Aggregate(RuleSet.Empty, (set, r) => set.With(r.Id));
}

using EptFuzz.Contract;

namespace EptFuzz.Targets.Vmx.Session;

/// <summary>How one probe of the case is asked of the VM, and what the host already knows about it.</summary>
internal sealed class ProbePlan(int id, Probe probe)
{
    /// <summary>The number the kernel prints for this probe (its index in the case).</summary>
    public int Id { get; } = id;
    public Probe Probe { get; } = probe;
    /// <summary>Set when the oracle cannot express the probe.</summary>
    public string? Unsupported { get; set; }
    /// <summary>Set when the answer follows from the case's memory without running anything (an entry probe that stops early, or an entry in a page hardware never walks).</summary>
    public Observation? Known { get; set; }
    /// <summary>The guest ran (or tried to run) this probe: expect a P or F line.</summary>
    public bool Runs { get; set; }
    /// <summary>A gva probe run through the case's own guest paging (else guest paging is the oracle's identity map).</summary>
    public bool ThroughCasePaging { get; set; }
    /// <summary>Under the case's paging: the GPA of the oracle's own entry in the case's guest PML4 page (read by every fetch of the oracle's code).</summary>
    public ulong? GuestWindowEntryGpa { get; set; }
    /// <summary>
    /// Gva probes through the case's paging: where the planner's own walks expect the access to end
    /// (final GPA, case host-physical address, EPT leaf size). No exit reports the final GPA of a
    /// completed access; it is reported only when the processor reached exactly this address.
    /// </summary>
    public (ulong Gpa, ulong Hpa, PageSize Size)? PredictedFinal { get; set; }
    /// <summary>Entry probes: the case's value of the entry and the relocated value the VM holds for it; expect an E line.</summary>
    public bool Dumped { get; set; }
    public ulong CaseEntryValue { get; set; }
    public ulong VmEntryValue { get; set; }
    /// <summary>
    /// Dumped entry probes under EPT A/D: the ids of the earlier access probes (since the case last
    /// wrote the entry) whose walks may have set its A/D bits. If the oracle could not run or
    /// observe one of them, the dump cannot tell whether the case's walk would have set them.
    /// </summary>
    public IReadOnlyList<int> EarlierWalkers { get; set; } = [];
    /// <summary>Dumped entry probes: the oracle's own code walked this entry since the case last wrote it (the window hangs below it).</summary>
    public bool OracleWalked { get; set; }
}

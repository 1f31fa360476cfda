using EptFuzz.Contract;
using EptFuzz.Targets.Vmx.Image;

namespace EptFuzz.Targets.Vmx.Session;

/// <summary>
/// Turns the recorded case into one boot: finds every EPT table page and leaf target the case's
/// tables ever reach, relocates them into the VM's RAM, rewrites the address fields of EPT entries,
/// and emits the script (memory writes, EPTP loads, INVEPT, probes and entry dumps, in case order).
/// </summary>
internal sealed partial class CasePlanner
{
    /// <summary>Bits 51:12: what entry probes follow (SEMANTICS: "follow bits 51:12").</summary>
    private const ulong Bits51To12 = 0x000F_FFFF_FFFF_F000;

    private readonly IReadOnlyList<CaseStep> steps;
    private readonly CpuCapabilities caseCpu;
    private readonly EmulatedCpu cpu;
    private readonly ulong caseAddressMask;
    private readonly Dictionary<ulong, EptLevel> tableLevels = [];
    private readonly HashSet<ulong> roots = [];
    private readonly HashSet<ulong> writtenPages = [];
    private readonly HashSet<(ulong Base, PageSize Size)> leafTargets = [];
    private readonly Relocation relocation = new();
    /// <summary>Case pages that serve as the guest's top-level paging table for some gva probe.</summary>
    private readonly HashSet<ulong> guestRoots = [];
    /// <summary>PML4 slots of the guest-linear addresses that gva probes use.</summary>
    private readonly HashSet<int> guestSlotsUsed = [];
    /// <summary>The GPAs that gva probes' guest walks read or end at (by our walk): the window must stay clear of them.</summary>
    private readonly HashSet<ulong> guestWalkGpas = [];
    /// <summary>Case pages that probes reach through a 1 GiB leaf (by our walk): they must sit at their offset in the VM's 1 GiB block.</summary>
    private readonly SortedSet<ulong> gigabytePages = [];
    /// <summary>Leaf targets (aligned base, size) that some probe reaches by our walk; the others share a zeroed stand-in.</summary>
    private readonly HashSet<(ulong Base, PageSize Size)> touchedLeaves = [];
    /// <summary>EPT PDPT pages, with the PML4 slots of the roots that point at them.</summary>
    private readonly Dictionary<ulong, HashSet<int>> pdptParents = [];
    private bool sawExecuteOnlyEntry;
    private bool sawLargePde;
    private bool sawLargePdpte;
    private List<(ulong Vm, int Pages, uint FirstId)>? plantRanges;
    private string? sessionProblem;

    public CasePlanner(IReadOnlyList<CaseStep> steps, CpuCapabilities caseCpu, EmulatedCpu cpu)
    {
        this.steps = steps;
        this.caseCpu = caseCpu;
        this.cpu = cpu;
        caseAddressMask = EptEntry.AddressMask(caseCpu.MaxPhyAddr);
    }

    public Relocation Relocation => relocation;

    /// <summary>Case pages whose tag cannot tell the leaf size (see <see cref="Relocation.AmbiguousSizePages"/>).</summary>
    public IReadOnlySet<ulong> AmbiguousSizePages => relocation.AmbiguousSizePages(leafTargets.Where(t => t.Size == PageSize.Size4K).Select(t => t.Base));

    /// <summary>The guest window's PML4 index.</summary>
    public int WindowIndex { get; private set; } = -1;

    /// <summary>
    /// -1 when the window hangs from a PML4 slot the case never uses; otherwise the PDPT slot (inside
    /// PML4 slot <see cref="WindowIndex"/>) it hangs from, in every PDPT page the case reaches there.
    /// </summary>
    public int WindowPdptSlot { get; private set; } = -1;

    /// <summary>Guest-physical (= guest-linear, identity) base of the window's 1 GiB region.</summary>
    public ulong WindowBase => ((ulong)WindowIndex << 39) | (WindowPdptSlot < 0 ? 0 : (ulong)WindowPdptSlot << 30);

    /// <summary>The case table pages that hold the oracle's window entry, and the slot it uses in them.</summary>
    private HashSet<ulong> windowHookPages = [];
    private int windowHookSlot = -1;

    /// <summary>The slot of the case's guest PML4 through which gva-mode guests reach the window (guest-linear = slot &lt;&lt; 39).</summary>
    public int GuestWindowSlot { get; private set; } = -1;

    /// <summary>Builds the plan. When the whole case cannot run, every probe carries the reason and the script is empty.</summary>
    public (ScriptBuilder Script, List<ProbePlan> Probes, string? Problem) Plan()
    {
        Classify();
        sessionProblem ??= cpu.Mismatch(caseCpu, FeatureUse());
        CheckPhysicalAddressWidth();
        if (sessionProblem is null)
        {
            Allocate();
        }

        if (sessionProblem is null)
        {
            ChooseWindow();
        }

        if (sessionProblem is null)
        {
            ChooseGuestWindowSlot();
        }

        var probes = new List<ProbePlan>();
        var script = new ScriptBuilder();
        if (sessionProblem is null)
        {
            EmitSetup(script);
            EmitSteps(script, probes);
        }
        else
        {
            foreach (var step in steps.Where(s => s.Kind == CaseStepKind.Probe))
            {
                probes.Add(new ProbePlan(probes.Count, step.Probe) { Unsupported = sessionProblem });
            }
        }

        return (script, probes, sessionProblem);
    }

    // ---- pass 1: which pages are EPT tables (at which level) and which are leaf targets ----

    private void Classify()
    {
        var memory = new Dictionary<ulong, ulong>();
        ulong eptp = 0;
        bool mbec = false;
        bool changed = true;
        var paging = GuestPaging.Off;
        foreach (var step in steps)
        {
            if (step.Kind == CaseStepKind.GuestPaging)
            {
                paging = step.Paging!;
            }
            else if (step.Kind == CaseStepKind.Probe && step.Probe.Kind == ProbeKind.Access)
            {
                var access = step.Probe.Access;
                bool throughPaging = access.Linear && paging.Enabled;
                if (throughPaging)
                {
                    guestSlotsUsed.Add((int)((access.Address >> 39) & 0x1FF));
                    if (GuestRootPage(memory, eptp, mbec, paging) is ulong root)
                    {
                        guestRoots.Add(root);
                    }
                }

                var gpas = throughPaging ? GuestWalkGpas(memory, eptp, mbec, paging, access.Address).Select(g => g.Gpa).ToList() : [access.Address];
                if (throughPaging)
                {
                    guestWalkGpas.UnionWith(gpas);
                }

                foreach (ulong gpa in gpas)
                {
                    if (FinalLeaf(memory, eptp, mbec, gpa) is not var (entry, level))
                    {
                        continue;
                    }

                    var size = EptEntry.LeafSize(level);
                    ulong baseAddress = entry & caseAddressMask & ~(size.Bytes() - 1);
                    touchedLeaves.Add((baseAddress, size));
                    if (size == PageSize.Size1G)
                    {
                        gigabytePages.Add(baseAddress + (gpa & (KernelLayout.GigabyteBlock - 1) & ~0xFFFUL));
                    }
                }
            }

            switch (step.Kind)
            {
                case CaseStepKind.Write:
                    memory[step.Write.Address.Value] = step.Write.Value;
                    writtenPages.Add(step.Write.Address.Value & ~0xFFFUL);
                    changed = true;
                    break;
                case CaseStepKind.Eptp:
                    eptp = step.Eptp;
                    roots.Add(eptp & caseAddressMask);
                    changed = true;
                    break;
                case CaseStepKind.Controls:
                    mbec = step.Controls.Mbec;
                    changed = true;
                    break;
                case CaseStepKind.Probe when changed:
                    WalkAll(memory, eptp, mbec);
                    changed = false;
                    break;
            }
        }

        WalkAll(memory, eptp, mbec);
    }

    private void WalkAll(Dictionary<ulong, ulong> memory, ulong eptp, bool mbec)
    {
        // Only 4-level walks are followed: with another length VM entry fails on a processor
        // without 5-level EPT, and a processor with it makes the session unsupported.
        if (((eptp >> 3) & 7) != 3)
        {
            return;
        }

        var visited = new HashSet<ulong>();
        var pending = new Stack<(ulong Page, EptLevel Level)>();
        pending.Push((eptp & caseAddressMask, EptLevel.Pml4e));
        while (pending.Count > 0)
        {
            var (page, level) = pending.Pop();
            if (tableLevels.TryGetValue(page, out var known) && known != level)
            {
                sessionProblem ??= $"case page 0x{page:x} is an EPT table at two levels ({(int)known} and {(int)level}); the oracle relocates each page once";
            }

            tableLevels[page] = level;
            if (!visited.Add(page))
            {
                continue;
            }

            for (ulong i = 0; i < 512; i++)
            {
                if (!memory.TryGetValue(page + i * 8, out ulong entry) || !EptEntry.IsPresent(entry, mbec))
                {
                    continue;
                }

                ulong address = entry & caseAddressMask;
                sawExecuteOnlyEntry |= (entry & EptEntry.ReadWriteExecute) == 4;
                sawLargePde |= level == EptLevel.Pde && (entry & EptEntry.LargePage) != 0;
                sawLargePdpte |= level == EptLevel.Pdpte && (entry & EptEntry.LargePage) != 0;
                if (EptEntry.IsLeaf(entry, level))
                {
                    var size = EptEntry.LeafSize(level);
                    leafTargets.Add((address & ~(size.Bytes() - 1), size));
                }
                else if (level > EptLevel.Pte)
                {
                    if (level == EptLevel.Pml4e)
                    {
                        if (!pdptParents.TryGetValue(address, out var slots))
                        {
                            pdptParents[address] = slots = [];
                        }

                        slots.Add((int)i);
                    }

                    pending.Push((address, level - 1));
                }
            }
        }
    }

    /// <summary>
    /// With a case MAXPHYADDR below the emulated one, EPT address bits in between are reserved for
    /// the case (misconfiguration) but valid here; relocation keeps such bits, so the case cannot run.
    /// (A case MAXPHYADDR above the emulated one is fine: those bits are address bits, relocated away.)
    /// </summary>
    private void CheckPhysicalAddressWidth()
    {
        if (caseCpu.MaxPhyAddr >= cpu.MaxPhyAddr)
        {
            return;
        }

        ulong between = EptEntry.AddressMask(cpu.MaxPhyAddr) & ~caseAddressMask;
        foreach (var step in steps)
        {
            bool hit = step.Kind switch
            {
                CaseStepKind.Eptp => (step.Eptp & between) != 0,
                CaseStepKind.Write => tableLevels.ContainsKey(step.Write.Address.Value & ~0xFFFUL) && (step.Write.Value & between) != 0,
                _ => false,
            };
            if (hit)
            {
                sessionProblem ??= $"the case sets physical-address bits {caseCpu.MaxPhyAddr}-{cpu.MaxPhyAddr - 1}, reserved for its cpu (maxphyaddr={caseCpu.MaxPhyAddr}) but not on {cpu.Engine} (MAXPHYADDR {cpu.MaxPhyAddr})";
                return;
            }
        }
    }

    // ---- pass 2: VM pages ----

    private void Allocate()
    {
        var plainPages = new HashSet<ulong>(writtenPages.Concat(tableLevels.Keys).Concat(roots));
        foreach (ulong page in gigabytePages)
        {
            if (!relocation.PlaceInGigabyteBlock(page, plainPages.Contains(page)))
            {
                sessionProblem = $"two case pages reached through 1 GiB leaves share the offset 0x{page & (KernelLayout.GigabyteBlock - 1):x}; the VM has one 1 GiB block";
                return;
            }
        }

        // Leaves no probe reaches (by our walk) point at a shared zeroed stand-in of their size: an
        // access the walk did not foresee reads no tag there and becomes unsupported, never wrong.
        foreach (var (baseAddress, size) in leafTargets.Where(t => t.Size != PageSize.Size1G && !touchedLeaves.Contains(t)))
        {
            if (!relocation.AddStandIn(baseAddress, size))
            {
                sessionProblem = OutOfMemory();
                return;
            }
        }

        // 2 MiB blocks first: a case-written page inside one must be that page of the block.
        foreach (var (baseAddress, size) in leafTargets.Where(t => t.Size != PageSize.Size4K && (t.Size == PageSize.Size1G || touchedLeaves.Contains(t))).OrderBy(t => t.Size).ThenBy(t => t.Base))
        {
            if (size == PageSize.Size2M && gigabytePages.Any(p => (p & ~0x1FFFFFUL) == baseAddress && plainPages.Contains(p)))
            {
                sessionProblem = $"a page the case writes is reached through both a 1 GiB and a 2 MiB leaf (2 MiB block 0x{baseAddress:x}); the VM can hold it in one place only";
                return;
            }

            if (!relocation.AddLeafTarget(baseAddress, size))
            {
                sessionProblem = OutOfMemory();
                return;
            }
        }

        foreach (ulong page in plainPages.Order())
        {
            if (!relocation.AddPlain(page))
            {
                sessionProblem = OutOfMemory();
                return;
            }
        }

        foreach (var (baseAddress, _) in leafTargets.Where(t => t.Size == PageSize.Size4K && touchedLeaves.Contains(t)).OrderBy(t => t.Base))
        {
            if (!relocation.AddLeafTarget(baseAddress, PageSize.Size4K))
            {
                sessionProblem = OutOfMemory();
                return;
            }
        }
    }

    private string OutOfMemory() =>
        $"the case needs more than the VM's {(KernelLayout.RamBytes - KernelLayout.PoolStart) >> 20} MiB of relocatable RAM ({writtenPages.Count} written pages, {leafTargets.Count} leaf targets)";

    /// <summary>A PML4 index that no EPT root of the case uses and no probe address falls into.</summary>
    private void ChooseWindow()
    {
        int limit = Math.Min(256, 1 << Math.Max(0, cpu.MaxPhyAddr - 39));
        var used = new HashSet<int>();
        var paging = GuestPaging.Off;
        foreach (var step in steps)
        {
            // Zero writes (a hypervisor clearing a new table) leave a slot free: the script puts the
            // oracle's entry back after them.
            if (step.Kind == CaseStepKind.Write && step.Write.Value != 0 && roots.Contains(step.Write.Address.Value & ~0xFFFUL))
            {
                used.Add((int)((step.Write.Address.Value & 0xFFF) >> 3));
            }
            else if (step.Kind == CaseStepKind.GuestPaging)
            {
                paging = step.Paging!;
            }
            else if (step.Kind == CaseStepKind.Probe && step.Probe.Kind == ProbeKind.Access && !(step.Probe.Access.Linear && paging.Enabled))
            {
                // Guest-physical accesses only: a gva through the case's paging is not a GPA.
                used.Add((int)Math.Min(step.Probe.Access.Address >> 39, int.MaxValue));
            }
        }

        // The case's guest paging may lead anywhere: its walks must not reach the oracle's memory.
        foreach (ulong gpa in guestWalkGpas)
        {
            used.Add((int)Math.Min(gpa >> 39, int.MaxValue));
        }

        for (int w = limit - 1; w >= 0; w--)
        {
            if (!used.Contains(w))
            {
                WindowIndex = w;
                windowHookPages = [.. roots];
                windowHookSlot = w;
                return;
            }
        }

        // Every PML4 slot is in use: hang the window from a free PDPT slot of one of them instead.
        var gpaRegions = GuestPhysicalProbeAddresses().Concat(guestWalkGpas).Select(a => a >> 30).ToHashSet();
        for (int w = 0; w < limit; w++)
        {
            var pdpts = pdptParents.Where(p => p.Value.Contains(w)).Select(p => p.Key).ToHashSet();
            if (pdpts.Count == 0 || pdpts.Any(p => pdptParents[p].Count > 1 || tableLevels[p] != EptLevel.Pdpte))
            {
                continue;
            }

            var usedSlots = steps.Where(st => st.Kind == CaseStepKind.Write && st.Write.Value != 0 && pdpts.Contains(st.Write.Address.Value & ~0xFFFUL))
                .Select(st => (int)((st.Write.Address.Value & 0xFFF) >> 3)).ToHashSet();
            for (int slot = 511; slot >= 0; slot--)
            {
                ulong region = ((ulong)w << 39) | ((ulong)slot << 30);
                if (usedSlots.Contains(slot) || region >> cpu.MaxPhyAddr != 0 || gpaRegions.Contains(region >> 30))
                {
                    continue;
                }

                WindowIndex = w;
                WindowPdptSlot = slot;
                windowHookPages = pdpts;
                windowHookSlot = slot;
                return;
            }
        }

        sessionProblem = $"every PML4 slot below 2^{cpu.MaxPhyAddr} is used by the case; the oracle needs one for its guest's code";
    }

    /// <summary>
    /// A slot of the case's guest PML4 tables that the case never writes and no gva probe uses
    /// (lower canonical half). The oracle puts its own entry there so its code stays reachable.
    /// </summary>
    private void ChooseGuestWindowSlot()
    {
        if (guestRoots.Count == 0)
        {
            return;
        }

        var used = new HashSet<int>(guestSlotsUsed);
        foreach (var step in steps)
        {
            // Zero writes (clearing the table) leave the slot free: the entry is rewritten before every gva probe.
            if (step.Kind == CaseStepKind.Write && step.Write.Value != 0 && guestRoots.Contains(step.Write.Address.Value & ~0xFFFUL))
            {
                used.Add((int)((step.Write.Address.Value & 0xFFF) >> 3));
            }
        }

        for (int slot = 255; slot >= 0; slot--)
        {
            if (!used.Contains(slot))
            {
                GuestWindowSlot = slot;
                return;
            }
        }
    }

    /// <summary>What the case uses of the capability-dependent features (walked entries, loaded EPTPs).</summary>
    private CaseFeatureUse FeatureUse()
    {
        var eptps = steps.Where(st => st.Kind == CaseStepKind.Eptp).Select(st => st.Eptp).ToList();
        return new CaseFeatureUse(
            sawExecuteOnlyEntry,
            sawLargePde,
            sawLargePdpte,
            eptps.Any(e => (e & 0x40) != 0),
            eptps.Any(e => ((e >> 3) & 7) == 4),
            eptps.Any(e => (e & 7) == 0),
            eptps.Any(e => (e & 7) == 6));
    }

    /// <summary>Addresses of probes that are guest-physical accesses (gpa, or gva with guest paging off).</summary>
    private IEnumerable<ulong> GuestPhysicalProbeAddresses()
    {
        var paging = GuestPaging.Off;
        foreach (var step in steps)
        {
            if (step.Kind == CaseStepKind.GuestPaging)
            {
                paging = step.Paging!;
            }
            else if (step.Kind == CaseStepKind.Probe && step.Probe.Kind == ProbeKind.Access && !(step.Probe.Access.Linear && paging.Enabled))
            {
                yield return step.Probe.Access.Address;
            }
        }
    }

    /// <summary>True for the case address of an entry that holds the oracle's window entry in the VM.</summary>
    private bool IsWindowEntry(ulong caseAddress) =>
        windowHookPages.Contains(caseAddress & ~0xFFFUL) && (int)((caseAddress & 0xFFF) >> 3) == windowHookSlot;

    /// <summary>The oracle's window entry: a PDPT pointer at the PML4 level, a PD pointer at the PDPT level.</summary>
    private ulong WindowHookEntry => (WindowPdptSlot < 0 ? KernelLayout.WindowEptPdpt : KernelLayout.WindowEptPd) | EptEntry.ReadWriteExecute;

    /// <summary>Rewrites the address field (bits N-1:12, case N) of an entry in a table page of <paramref name="level"/>; every other bit is kept.</summary>
    internal ulong RelocateEntry(ulong entry, EptLevel level)
    {
        ulong address = entry & caseAddressMask;
        if (EptEntry.IsLeaf(entry, level))
        {
            var size = EptEntry.LeafSize(level);
            ulong baseAddress = address & ~(size.Bytes() - 1);
            // The misalignment bits of a large leaf are kept: they make it a misconfiguration.
            return relocation.TryMapLeaf(baseAddress, size, out ulong vm) ? (entry & ~caseAddressMask) | vm | (address - baseAddress) : entry;
        }

        return level > EptLevel.Pte && relocation.TryMapPlain(address, out ulong vmTable) ? (entry & ~caseAddressMask) | vmTable : entry;
    }

    private ulong RelocateEptp(ulong eptp)
    {
        ulong root = eptp & caseAddressMask;
        return relocation.TryMapPlain(root, out ulong vm) ? (eptp & ~caseAddressMask) | vm : eptp;
    }
}

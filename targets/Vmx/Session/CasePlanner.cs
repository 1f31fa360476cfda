using EptFuzz.Contract;
using EptFuzz.Targets.Vmx.Image;

namespace EptFuzz.Targets.Vmx.Session;

/// <summary>
/// Turns the recorded case into one boot: finds every EPT table page and leaf target the case's
/// tables ever reach, relocates them into the VM's RAM, rewrites the address fields of EPT entries,
/// and emits the script (memory writes, EPTP loads, INVEPT, probes and entry dumps, in case order).
/// </summary>
internal sealed class CasePlanner
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
    /// <summary>Case pages that probes reach through a 1 GiB leaf (by our walk): they must sit at their offset in the VM's 1 GiB block.</summary>
    private readonly SortedSet<ulong> gigabytePages = [];
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

    /// <summary>The guest window's PML4 index (guest-physical = guest-linear = index &lt;&lt; 39).</summary>
    public int WindowIndex { get; private set; } = -1;

    /// <summary>The slot of the case's guest PML4 through which gva-mode guests reach the window (guest-linear = slot &lt;&lt; 39).</summary>
    public int GuestWindowSlot { get; private set; } = -1;

    /// <summary>Builds the plan. When the whole case cannot run, every probe carries the reason and the script is empty.</summary>
    public (ScriptBuilder Script, List<ProbePlan> Probes, string? Problem) Plan()
    {
        Classify();
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

                var gpas = throughPaging ? GuestWalkGpas(memory, eptp, mbec, paging, access.Address).Select(g => g.Gpa) : [access.Address];
                foreach (ulong gpa in gpas)
                {
                    if (FinalLeaf(memory, eptp, mbec, gpa) is { Level: EptLevel.Pdpte } gigabyte)
                    {
                        ulong baseAddress = gigabyte.Entry & caseAddressMask & ~(KernelLayout.GigabyteBlock - 1);
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
                if (EptEntry.IsLeaf(entry, level))
                {
                    var size = EptEntry.LeafSize(level);
                    leafTargets.Add((address & ~(size.Bytes() - 1), size));
                }
                else if (level > EptLevel.Pte)
                {
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

        foreach (ulong page in plainPages.Order())
        {
            if (!relocation.AddPlain(page))
            {
                sessionProblem = OutOfMemory();
                return;
            }
        }

        foreach (var (baseAddress, size) in leafTargets.OrderBy(t => t.Size).ThenBy(t => t.Base))
        {
            if (!relocation.AddLeafTarget(baseAddress, size))
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
        foreach (var step in steps)
        {
            if (step.Kind == CaseStepKind.Write && roots.Contains(step.Write.Address.Value & ~0xFFFUL))
            {
                used.Add((int)((step.Write.Address.Value & 0xFFF) >> 3));
            }
            else if (step.Kind == CaseStepKind.Probe && step.Probe.Kind == ProbeKind.Access)
            {
                used.Add((int)Math.Min(step.Probe.Access.Address >> 39, int.MaxValue));
            }
        }

        for (int w = limit - 1; w >= 0; w--)
        {
            if (!used.Contains(w))
            {
                WindowIndex = w;
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
            if (step.Kind == CaseStepKind.Write && guestRoots.Contains(step.Write.Address.Value & ~0xFFFUL))
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

    /// <summary>The case page holding the guest's PML4 (CR3 translated through the case's EPT), or null when the EPT does not map it.</summary>
    private ulong? GuestRootPage(Dictionary<ulong, ulong> memory, ulong eptp, bool mbec, GuestPaging paging)
    {
        ulong cr3 = paging.Cr3.Value & ~0xFFFUL;
        if (FinalLeaf(memory, eptp, mbec, cr3) is not var (entry, level))
        {
            return null;
        }

        ulong size = EptEntry.LeafSize(level).Bytes();
        ulong baseAddress = entry & caseAddressMask & ~(size - 1);
        return baseAddress + (cr3 & (size - 1));
    }

    // ---- pass 3: the script ----

    private ulong WindowBase => (ulong)WindowIndex << 39;

    private void EmitSetup(ScriptBuilder script)
    {
        foreach (var (_, vm) in relocation.PlainPages)
        {
            script.Add(ScriptOp.Zero, vm, 0, 1);
        }

        foreach (var run in relocation.Runs)
        {
            script.Add(ScriptOp.Fill, run.VmStart, run.CaseStart, (ulong)run.Pages, (byte)run.SizeCode);
        }

        // The window: the case's roots get one extra PML4 entry leading to a 2 MiB WB leaf on the
        // kernel's window block (guest code, stack, guest page tables).
        script.Write(KernelLayout.WindowEptPdpt, KernelLayout.WindowEptPd | EptEntry.ReadWriteExecute);
        script.Write(KernelLayout.WindowEptPd, KernelLayout.Window | EptEntry.LargePage | (6UL << 3) | EptEntry.ReadWriteExecute);
        foreach (ulong root in roots)
        {
            if (relocation.TryMapPlain(root, out ulong vmRoot))
            {
                script.Write(vmRoot + (ulong)WindowIndex * 8, KernelLayout.WindowEptPdpt | EptEntry.ReadWriteExecute);
            }
        }

        byte[] code = GuestCode.Build(WindowBase + KernelLayout.WindowCode);
        for (int i = 0; i < code.Length; i += 8)
        {
            script.Write(KernelLayout.Window + KernelLayout.WindowCode + (ulong)i, BitConverter.ToUInt64(code, i));
        }

        // Guest identity paging (guest-linear = guest-physical) with 1 GiB pages, A and D preset so
        // the guest never writes its own tables. P | RW | US | A (| D | PS on leaves).
        const ulong table = 0x27;
        const ulong leaf = 0xE7;
        ulong pml4 = KernelLayout.Window + KernelLayout.WindowGuestPml4;
        var regions = new SortedSet<int> { WindowIndex };
        foreach (var step in steps)
        {
            // gva probes too: with guest paging off they are guest-physical accesses.
            if (step.Kind == CaseStepKind.Probe && step.Probe.Kind == ProbeKind.Access && step.Probe.Access.Address >> cpu.MaxPhyAddr == 0)
            {
                regions.Add((int)(step.Probe.Access.Address >> 39));
            }
        }

        ulong nextPdpt = KernelLayout.WindowGuestPdpts;
        foreach (int region in regions)
        {
            script.Write(pml4 + (ulong)region * 8, (WindowBase + nextPdpt) | table);
            for (ulong j = 0; j < 512; j++)
            {
                ulong gpa = ((ulong)region << 39) | (j << 30);
                if (gpa >> cpu.MaxPhyAddr == 0)
                {
                    script.Write(KernelLayout.Window + nextPdpt + j * 8, gpa | leaf);
                }
            }

            nextPdpt += 0x1000;
        }

        // The window as seen from the case's guest paging: user page first, supervisor alias second.
        script.Write(KernelLayout.Window + KernelLayout.WindowCasePagingPdpt, WindowBase | leaf);
        script.Write(KernelLayout.Window + KernelLayout.WindowCasePagingPdpt + 8, WindowBase | (leaf & ~4UL));
    }

    private const ulong IdentityEfer = 0x500; // LME | LMA

    private ScriptBuilder IdentityPaging(ScriptBuilder script) =>
        script.Add(ScriptOp.GuestPaging, WindowBase + KernelLayout.WindowGuestPml4, 0, IdentityEfer, flags: 1);

    private void EmitSteps(ScriptBuilder script, List<ProbePlan> probes)
    {
        var memory = new Dictionary<ulong, ulong>();
        var vmValues = new Dictionary<ulong, ulong>();
        ulong eptp = 0;
        bool mbec = false;
        bool tablesChanged = false;
        var paging = GuestPaging.Off;
        GuestPaging? loaded = null;
        foreach (var step in steps)
        {
            switch (step.Kind)
            {
                case CaseStepKind.Write:
                {
                    ulong address = step.Write.Address.Value;
                    memory[address] = step.Write.Value;
                    relocation.TryMapPlain(address & ~0xFFFUL, out ulong vmPage);
                    ulong value = tableLevels.TryGetValue(address & ~0xFFFUL, out var level) ? RelocateEntry(step.Write.Value, level) : step.Write.Value;
                    ulong vmAddress = vmPage + (address & 0xFFF);
                    vmValues[vmAddress] = value;
                    script.Write(vmAddress, value);
                    tablesChanged = true;
                    break;
                }

                case CaseStepKind.Eptp:
                    eptp = step.Eptp;
                    script.Add(ScriptOp.SetEptp, RelocateEptp(eptp));
                    tablesChanged = true;
                    break;
                case CaseStepKind.Controls:
                    mbec = step.Controls.Mbec;
                    break;
                case CaseStepKind.Invept:
                    script.Add(ScriptOp.Invept);
                    tablesChanged = false;
                    break;
                case CaseStepKind.GuestPaging:
                    paging = step.Paging!;
                    break;
                case CaseStepKind.Probe:
                {
                    var plan = new ProbePlan(probes.Count, step.Probe);
                    probes.Add(plan);
                    if (tablesChanged)
                    {
                        // INVEPT after every change: the oracle never answers from a stale translation.
                        script.Add(ScriptOp.Invept);
                        tablesChanged = false;
                    }

                    EmitProbe(script, plan, memory, vmValues, eptp, mbec, paging, ref loaded);
                    break;
                }
            }
        }
    }

    private void EmitProbe(ScriptBuilder script, ProbePlan plan, Dictionary<ulong, ulong> memory, Dictionary<ulong, ulong> vmValues, ulong eptp, bool mbec, GuestPaging paging, ref GuestPaging? loaded)
    {
        var probe = plan.Probe;
        switch (probe.Kind)
        {
            case ProbeKind.Entry:
                PlanEntry(script, plan, memory, vmValues, eptp, mbec);
                return;
            case ProbeKind.VmEntry:
                if (mbec)
                {
                    plan.Unsupported = "the MBEC control: the oracle does not set it";
                    return;
                }

                if (loaded != GuestPaging.Off)
                {
                    IdentityPaging(script);
                    loaded = GuestPaging.Off;
                }

                plan.Runs = true;
                script.Add(ScriptOp.Probe, (ulong)plan.Id, WindowBase + KernelLayout.WindowCode + GuestCode.VmcallStub, 0);
                return;
        }

        var access = probe.Access;
        // A gva probe with guest paging off is a guest-physical access (linear = guest-physical).
        bool throughCasePaging = access.Linear && paging.Enabled;
        if (mbec)
        {
            plan.Unsupported = "the MBEC control: the oracle does not set it";
            return;
        }

        ulong codeBase;
        plan.ThroughCasePaging = throughCasePaging;
        if (throughCasePaging)
        {
            if (!PrepareCasePaging(script, plan, memory, eptp, mbec, paging))
            {
                return;
            }

            codeBase = ((ulong)GuestWindowSlot << 39) + (access.Cpl == 3 ? 0 : 1UL << 30);
            if (loaded != paging)
            {
                ulong cr4 = paging.Smep ? 1UL << 20 : 0;
                ulong efer = IdentityEfer | (paging.Nxe ? 0x800UL : 0);
                script.Add(ScriptOp.GuestPaging, paging.Cr3.Value & ~0xFFFUL, cr4, efer, flags: (byte)(paging.Wp ? 1 : 0));
                loaded = paging;
            }
        }
        else
        {
            if (access.Address >> cpu.MaxPhyAddr != 0)
            {
                plan.Unsupported = $"GPA 0x{access.Address:x} is at or above 2^{cpu.MaxPhyAddr}: the oracle's guest cannot form it with its paging ({cpu.Engine} MAXPHYADDR {cpu.MaxPhyAddr})";
                return;
            }

            codeBase = WindowBase + KernelLayout.WindowCode;
            if (loaded != GuestPaging.Off)
            {
                IdentityPaging(script);
                loaded = GuestPaging.Off;
            }
        }

        byte cpl3 = (byte)(access.Cpl == 3 ? 1 : 0);
        var leaf = throughCasePaging ? null : FinalLeaf(memory, eptp, mbec, access.Address);
        if (cpu.IgnoresLargeLeafBit12 && leaf is { Level: > EptLevel.Pte } large && (large.Entry & 0x1000) != 0)
        {
            plan.Unsupported = $"{cpu.Engine} ignores bit 12 of a large EPT leaf's address (a known emulator deviation): the misalignment would go unseen";
            return;
        }

        if (throughCasePaging && cpu.IgnoresLargeLeafBit12 && GuestWalkGpas(memory, eptp, mbec, paging, access.Address).Any(g => FinalLeaf(memory, eptp, mbec, g.Gpa) is { Level: > EptLevel.Pte } l && (l.Entry & 0x1000) != 0))
        {
            plan.Unsupported = $"{cpu.Engine} ignores bit 12 of a large EPT leaf's address (a known emulator deviation), and this gva probe may walk through such a leaf";
            return;
        }

        ulong stub = access.Kind switch
        {
            AccessKind.Read => GuestCode.ReadStub,
            AccessKind.Write => GuestCode.WriteStub,
            _ => GuestCode.FetchStub,
        };
        ulong rip = codeBase + stub;
        if (access.Kind != AccessKind.Fetch)
        {
            plan.Runs = true;
            script.Add(ScriptOp.Probe, (ulong)plan.Id, rip, access.Address, cpl3);
            return;
        }

        ulong offset = access.Address & 0xFFF;
        if (offset > 0xFF8)
        {
            plan.Unsupported = "a fetch in the last 7 bytes of a page: the planted 8-byte instruction would cross into the next page";
            return;
        }

        if ((ulong)relocation.TaggedPageCount * 8 > KernelLayout.PlantSaveSize)
        {
            plan.Unsupported = "too many tagged pages to plant fetch code in all of them";
            return;
        }

        if (throughCasePaging)
        {
            // The page the fetch will run is decided by the final GPA of the guest walk.
            var final = GuestWalkGpas(memory, eptp, mbec, paging, access.Address).LastOrDefault();
            leaf = final.Final ? FinalLeaf(memory, eptp, mbec, final.Gpa) : null;
        }

        if (leaf is { Level: EptLevel.Pte } pte && relocation.PlainPages.ContainsKey(pte.Entry & caseAddressMask))
        {
            plan.Unsupported = "the fetch would execute a page the case writes (tables or data): the oracle plants code only in tagged pages";
            return;
        }

        var ranges = PlantRanges();
        foreach (var (vm, pages, firstId) in ranges)
        {
            script.Add(ScriptOp.Plant, vm | offset, KernelLayout.PlantSave + (ulong)firstId * 8, (uint)pages | ((ulong)firstId << 32));
        }

        plan.Runs = true;
        script.Add(ScriptOp.Probe, (ulong)plan.Id, rip, access.Address, cpl3);
        foreach (var (vm, pages, firstId) in ranges)
        {
            script.Add(ScriptOp.Unplant, vm | offset, KernelLayout.PlantSave + (ulong)firstId * 8, (uint)pages);
        }
    }

    /// <summary>Tagged runs merged where both the VM pages and the ids continue: one Plant command each.</summary>
    private List<(ulong Vm, int Pages, uint FirstId)> PlantRanges()
    {
        plantRanges ??= Merge();
        return plantRanges;

        List<(ulong Vm, int Pages, uint FirstId)> Merge()
        {
            var merged = new List<(ulong Vm, int Pages, uint FirstId)>();
            foreach (var run in relocation.Runs.OrderBy(r => r.FirstId))
            {
                if (merged.Count > 0 && merged[^1] is var last &&
                    last.Vm + ((ulong)last.Pages << 12) == run.VmStart && last.FirstId + (uint)last.Pages == run.FirstId)
                {
                    merged[^1] = (last.Vm, last.Pages + run.Pages, last.FirstId);
                }
                else
                {
                    merged.Add((run.VmStart, run.Pages, run.FirstId));
                }
            }

            return merged;
        }
    }

    /// <summary>
    /// Makes the case's guest paging able to run the oracle's code: one entry of its own in the
    /// case's guest PML4 (a slot the case never uses) leading to the window. False (with the reason
    /// set) when that is impossible for this probe.
    /// </summary>
    private bool PrepareCasePaging(ScriptBuilder script, ProbePlan plan, Dictionary<ulong, ulong> memory, ulong eptp, bool mbec, GuestPaging paging)
    {
        ulong gva = plan.Probe.Access.Address;
        if (gva >= 1UL << 47 && gva < 0xFFFF_8000_0000_0000)
        {
            plan.Unsupported = $"GVA 0x{gva:x} is not canonical";
            return false;
        }

        if (GuestWindowSlot < 0)
        {
            plan.Unsupported = "every slot of the case's guest PML4 is used; the oracle needs one for its code";
            return false;
        }

        if (GuestRootPage(memory, eptp, mbec, paging) is not ulong root || !relocation.TryMapPlain(root & ~0xFFFUL, out ulong vmRoot))
        {
            plan.Unsupported = "the case's EPT does not map the guest's CR3 page to a page the case wrote, so the oracle's guest cannot run its code there";
            return false;
        }

        const ulong table = 0x27; // P | RW | US | A
        script.Write(vmRoot + (ulong)GuestWindowSlot * 8, (WindowBase + KernelLayout.WindowCasePagingPdpt) | table);
        return true;
    }

    /// <summary>
    /// The guest-physical addresses a 4-level guest walk of <paramref name="gva"/> reads (each entry)
    /// and, when it gets that far, the final one; read through our own EPT walk of the case's memory.
    /// Used only to keep probes away from a known emulator deviation.
    /// </summary>
    private IEnumerable<(ulong Gpa, bool Final)> GuestWalkGpas(Dictionary<ulong, ulong> memory, ulong eptp, bool mbec, GuestPaging paging, ulong gva)
    {
        ulong table = paging.Cr3.Value & ~0xFFFUL;
        for (int level = 4; level >= 1; level--)
        {
            ulong entryGpa = table + Index(gva, level) * 8;
            yield return (entryGpa, false);
            if (FinalLeaf(memory, eptp, mbec, entryGpa) is not var (ept, eptLevel))
            {
                yield break;
            }

            ulong size = EptEntry.LeafSize(eptLevel).Bytes();
            ulong hpa = (ept & caseAddressMask & ~(size - 1)) + (entryGpa & (size - 1));
            ulong entry = memory.GetValueOrDefault(hpa);
            if ((entry & 1) == 0)
            {
                yield break;
            }

            ulong address = entry & caseAddressMask;
            if (level == 1 || (level <= 3 && (entry & 0x80) != 0))
            {
                ulong pageSize = 1UL << (12 + 9 * (level - 1));
                yield return ((address & ~(pageSize - 1)) | (gva & (pageSize - 1)), true);
                yield break;
            }

            table = address;
        }
    }

    /// <summary>
    /// Entry probes per SEMANTICS: follow bits 51:12 from the EPTP; stop at a not-present entry or a
    /// leaf above the level. The host knows the case's values; the VM adds only hardware A/D bits.
    /// </summary>
    private void PlanEntry(ScriptBuilder script, ProbePlan plan, Dictionary<ulong, ulong> memory, Dictionary<ulong, ulong> vmValues, ulong eptp, bool mbec)
    {
        var probe = plan.Probe;
        int levels = (int)((eptp >> 3) & 7) + 1;
        int target = (int)probe.EntryLevel;
        if (target > levels)
        {
            plan.Known = new Observation { Kind = OutcomeKind.EntryNotReached };
            return;
        }

        ulong table = eptp & Bits51To12;
        for (int level = levels; level > target; level--)
        {
            ulong entry = memory.GetValueOrDefault(table + Index(probe.EntryGpa.Value, level) * 8);
            if (!EptEntry.IsPresent(entry, mbec) || EptEntry.IsLeaf(entry, (EptLevel)Math.Min(level, 5)) && level <= 3)
            {
                plan.Known = new Observation { Kind = OutcomeKind.EntryNotReached };
                return;
            }

            table = entry & Bits51To12;
        }

        ulong address = table + Index(probe.EntryGpa.Value, target) * 8;
        ulong value = memory.GetValueOrDefault(address);
        if (!relocation.TryMapPlain(address & ~0xFFFUL, out ulong vmPage))
        {
            // Never a table the case's EPT reaches, so the hardware never set A/D there: the case's value is exact.
            plan.Known = new Observation { Kind = OutcomeKind.Entry, EntryValue = value };
            return;
        }

        ulong vmAddress = vmPage + (address & 0xFFF);
        plan.Dumped = true;
        plan.CaseEntryValue = value;
        plan.VmEntryValue = vmValues.GetValueOrDefault(vmAddress);
        script.Add(ScriptOp.Dump, (ulong)plan.Id, vmAddress);
    }

    private static ulong Index(ulong gpa, int level) => (gpa >> (12 + 9 * (level - 1))) & 0x1FF;

    /// <summary>
    /// Our own walk of a GPA to its leaf (no permission or misconfiguration checks). Used only to keep
    /// probes away from what the oracle cannot express, never to answer one.
    /// </summary>
    private (ulong Entry, EptLevel Level)? FinalLeaf(Dictionary<ulong, ulong> memory, ulong eptp, bool mbec, ulong gpa)
    {
        if (((eptp >> 3) & 7) != 3)
        {
            return null;
        }

        ulong table = eptp & caseAddressMask;
        for (var level = EptLevel.Pml4e; level >= EptLevel.Pte; level--)
        {
            ulong entry = memory.GetValueOrDefault(table + Index(gpa, (int)level) * 8);
            if (!EptEntry.IsPresent(entry, mbec))
            {
                return null;
            }

            if (EptEntry.IsLeaf(entry, level))
            {
                return (entry, level);
            }

            table = entry & caseAddressMask;
        }

        return null;
    }

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

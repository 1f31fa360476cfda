using EptFuzz.Contract;
using EptFuzz.Targets.Vmx.Image;

namespace EptFuzz.Targets.Vmx.Session;

/// <summary>Pass 3 of <see cref="CasePlanner"/>: the script, in case order, and how each probe is asked.</summary>
internal sealed partial class CasePlanner
{

    private void EmitSetup(ScriptBuilder script)
    {
        // Every page the guest can reach starts tagged; the case's writes land on top later.
        foreach (var run in relocation.Runs)
        {
            script.Add(ScriptOp.Fill, run.VmStart, run.CaseStart, (ulong)run.Pages, (byte)run.SizeCode);
        }

        foreach (var (vm, casePage, sizeCode) in relocation.PlainFills())
        {
            script.Add(ScriptOp.Fill, vm, casePage, 1, (byte)sizeCode);
        }

        foreach (var (vm, pages) in relocation.StandIns())
        {
            script.Add(ScriptOp.Zero, vm, 0, (ulong)pages);
        }

        // The window: the case's roots get one extra PML4 entry leading to a 2 MiB WB leaf on the
        // kernel's window block (guest code, stack, guest page tables).
        script.Write(KernelLayout.WindowEptPdpt, KernelLayout.WindowEptPd | EptEntry.ReadWriteExecute);
        script.Write(KernelLayout.WindowEptPd, KernelLayout.Window | EptEntry.LargePage | (6UL << 3) | EptEntry.ReadWriteExecute);
        foreach (ulong page in windowHookPages)
        {
            if (relocation.TryMapPlain(page, out ulong vmPage))
            {
                script.Write(vmPage + (ulong)windowHookSlot * 8, WindowHookEntry);
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
        // EPT A/D: for each EPT entry (case address), the access probes since the case last wrote it
        // whose walks may set its A/D bits, and whether the oracle's own code walked it meanwhile.
        var walkers = new Dictionary<ulong, List<int>>();
        var oracleWalked = new HashSet<ulong>();
        foreach (var step in steps)
        {
            switch (step.Kind)
            {
                case CaseStepKind.Write:
                {
                    ulong address = step.Write.Address.Value;
                    memory[address] = step.Write.Value;
                    walkers.Remove(address);
                    oracleWalked.Remove(address);
                    relocation.TryMapPlain(address & ~0xFFFUL, out ulong vmPage);
                    ulong value = tableLevels.TryGetValue(address & ~0xFFFUL, out var level) ? RelocateEntry(step.Write.Value, level) : step.Write.Value;
                    ulong vmAddress = vmPage + (address & 0xFFF);
                    if (IsWindowEntry(address))
                    {
                        // The case clears the window slot (only zero is ever written there): the VM
                        // keeps the oracle's entry.
                        value = WindowHookEntry;
                    }

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

                    if (step.Probe.Kind == ProbeKind.Entry)
                    {
                        ulong? entryAddress = PlanEntry(script, plan, memory, vmValues, eptp, mbec);
                        if (entryAddress is ulong walked && plan.Dumped)
                        {
                            plan.EarlierWalkers = walkers.TryGetValue(walked, out var ids) ? [.. ids] : [];
                            plan.OracleWalked = oracleWalked.Contains(walked);
                        }

                        break;
                    }

                    bool accessedDirty = (eptp & EptAccessedDirty) != 0;
                    if (accessedDirty && step.Probe.Kind == ProbeKind.Access)
                    {
                        foreach (ulong entry in ProbeEptEntries(memory, eptp, mbec, paging, step.Probe.Access))
                        {
                            if (!walkers.TryGetValue(entry, out var ids))
                            {
                                walkers[entry] = ids = [];
                            }

                            ids.Add(plan.Id);
                        }
                    }

                    EmitProbe(script, plan, memory, vmValues, eptp, mbec, paging, ref loaded);
                    if (accessedDirty && plan.Runs && WindowPdptSlot >= 0)
                    {
                        // The window hangs below the case's own PML4 entry of its slot: every run of
                        // the oracle's code walks that entry.
                        oracleWalked.Add((eptp & caseAddressMask) + (ulong)WindowIndex * 8);
                    }

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
            var final = GuestWalkGpas(memory, eptp, mbec, paging, access.Address).LastOrDefault();
            if (final.Final && FinalLeaf(memory, eptp, mbec, final.Gpa) is var (finalEntry, finalLevel))
            {
                plan.PredictedFinal = (final.Gpa, LeafPage(finalEntry, finalLevel, final.Gpa) | (final.Gpa & 0xFFF), EptEntry.LeafSize(finalLevel));
            }

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
        ulong finalGpa = access.Address;
        var leaf = throughCasePaging ? null : FinalLeaf(memory, eptp, mbec, access.Address);
        if (cpu.IgnoresLargeLeafBit12 && leaf is { Level: > EptLevel.Pte } large && (large.Entry & 0x1000) != 0)
        {
            plan.Unsupported = $"{cpu.Engine} ignores bit 12 of a large EPT leaf's address (a known emulator deviation): the misalignment would go unseen";
            return;
        }

        if (throughCasePaging && caseCpu.MaxPhyAddr != cpu.MaxPhyAddr)
        {
            // Guest entries' address bits between the two widths are reserved on one processor and
            // valid on the other: a #PF(RSVD) on one side only.
            int low = Math.Min(caseCpu.MaxPhyAddr, cpu.MaxPhyAddr);
            int high = Math.Max(caseCpu.MaxPhyAddr, cpu.MaxPhyAddr);
            ulong between = ((1UL << high) - 1) & ~((1UL << low) - 1);
            if (GuestWalkGpas(memory, eptp, mbec, paging, access.Address).Any(g => (g.Entry & between) != 0 || (g.Final && (g.Gpa & between) != 0)))
            {
                plan.Unsupported = $"the guest walk uses physical-address bits {low}-{high - 1}: reserved for one of the case's cpu (maxphyaddr={caseCpu.MaxPhyAddr}) and {cpu.Engine} (MAXPHYADDR {cpu.MaxPhyAddr}), valid for the other";
                return;
            }
        }

        if (throughCasePaging && cpu.IgnoresEptWriteForGuestAccessedDirty && (eptp & 0x40) == 0 &&
            GuestUpdateNeedsEptWrite(memory, eptp, mbec, paging, access))
        {
            plan.Unsupported = $"{cpu.Engine} sets guest A/D bits without checking EPT write permission when EPT A/D is off (a known emulator deviation), and this walk must set one in a page the EPT does not let the guest write";
            return;
        }

        if (throughCasePaging && cpu.ReportsGuestWalkViolationAsWriteOnly && (eptp & 0x40) != 0 &&
            GuestTableAccessViolates(memory, eptp, mbec, paging, access.Address))
        {
            // With EPT A/D on, a guest paging-structure access is a write: an entry page the EPT does
            // not let the guest write (or does not map) violates, and the qualification differs.
            plan.Unsupported = $"{cpu.Engine} reports a violation on a guest paging-structure access under EPT A/D with qualification bit 1 alone, not bits 0 and 1 (a known emulator deviation, ept-rules.md §18.4), and this walk reads a guest table the EPT does not let the guest write";
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
            finalGpa = final.Gpa;
        }

        if (leaf is var (leafEntry, leafLevel) && relocation.PlainPages.ContainsKey(LeafPage(leafEntry, leafLevel, finalGpa)))
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

    /// <summary>Whether the guest walk must set an A bit (or the leaf's D bit, for a write) in a guest entry whose page the EPT walk does not make writable.</summary>
    private bool GuestUpdateNeedsEptWrite(Dictionary<ulong, ulong> memory, ulong eptp, bool mbec, GuestPaging paging, Access access)
    {
        var walk = GuestWalkGpas(memory, eptp, mbec, paging, access.Address).ToList();
        int leafIndex = walk.Count >= 2 && walk[^1].Final ? walk.Count - 2 : -1;
        for (int i = 0; i < walk.Count; i++)
        {
            var (gpa, final, entry) = walk[i];
            if (final || (entry & 1) == 0)
            {
                continue;
            }

            bool needsUpdate = (entry & 0x20) == 0 || (i == leafIndex && access.Kind == AccessKind.Write && (entry & 0x40) == 0);
            if (needsUpdate && !EptWritable(memory, eptp, mbec, gpa))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The case page a leaf maps <paramref name="gpa"/> to.</summary>
    private ulong LeafPage(ulong leafEntry, EptLevel level, ulong gpa)
    {
        ulong size = EptEntry.LeafSize(level).Bytes();
        return ((leafEntry & caseAddressMask & ~(size - 1)) + (gpa & (size - 1))) & ~0xFFFUL;
    }

    /// <summary>Tagged runs merged where both the VM pages and the ids continue: one Plant command each.</summary>
    private List<(ulong Vm, int Pages, uint FirstId)> PlantRanges()
    {
        plantRanges ??= Merge();
        return plantRanges;

        List<(ulong Vm, int Pages, uint FirstId)> Merge()
        {
            var merged = new List<(ulong Vm, int Pages, uint FirstId)>();
            // Page by page, so that case-written pages inside 2 MiB blocks (guest tables, say) never get code planted.
            foreach (var run in relocation.Runs.OrderBy(r => r.FirstId))
            {
                for (int i = 0; i < run.Pages; i++)
                {
                    ulong vm = run.VmStart + ((ulong)i << 12);
                    uint id = run.FirstId + (uint)i;
                    if (relocation.IsPlainInBlock(vm))
                    {
                        continue;
                    }

                    if (merged.Count > 0 && merged[^1] is var last && last.Vm + ((ulong)last.Pages << 12) == vm && last.FirstId + (uint)last.Pages == id)
                    {
                        merged[^1] = (last.Vm, last.Pages + 1, last.FirstId);
                    }
                    else
                    {
                        merged.Add((vm, 1, id));
                    }
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

        ulong cr3 = paging.Cr3.Value & ~0xFFFUL;
        if (cr3 >> cpu.MaxPhyAddr != 0)
        {
            // VM entry checks that guest CR3 sets no bit at or above the processor's MAXPHYADDR
            // (SDM Vol. 3C, "Checks on Guest Control Registers"): the guest cannot even start with this CR3.
            plan.Unsupported = $"the guest's CR3 0x{cr3:x} is at or above 2^{cpu.MaxPhyAddr}: VM entry with it fails on {cpu.Engine} (MAXPHYADDR {cpu.MaxPhyAddr})";
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
        plan.GuestWindowEntryGpa = cr3 + (ulong)GuestWindowSlot * 8;
        return true;
    }

    /// <summary>
    /// Entry probes per SEMANTICS: follow bits 51:12 from the EPTP; stop at a not-present entry or a
    /// leaf above the level. The host knows the case's values; the VM adds only hardware A/D bits.
    /// </summary>
    /// <returns>The case address of the entry the probe reads, or null when it reaches none.</returns>
    private ulong? PlanEntry(ScriptBuilder script, ProbePlan plan, Dictionary<ulong, ulong> memory, Dictionary<ulong, ulong> vmValues, ulong eptp, bool mbec)
    {
        var probe = plan.Probe;
        // EPTP[5:3] = 3 or 4: a 4- or 5-level walk; any other length walks nothing (VM entry fails
        // with it), so no level is reached (as the reference's FindEntry has it).
        int levels = ((eptp >> 3) & 7) switch { 3 => 4, 4 => 5, _ => 0 };
        int target = (int)probe.EntryLevel;
        if (target > levels)
        {
            plan.Known = new Observation { Kind = OutcomeKind.EntryNotReached };
            return null;
        }

        ulong table = eptp & Bits51To12;
        for (int level = levels; level > target; level--)
        {
            ulong entry = memory.GetValueOrDefault(table + Index(probe.EntryGpa.Value, level) * 8);
            if (!EptEntry.IsPresent(entry, mbec) || EptEntry.IsLeaf(entry, (EptLevel)Math.Min(level, 5)) && level <= 3)
            {
                plan.Known = new Observation { Kind = OutcomeKind.EntryNotReached };
                return null;
            }

            table = entry & Bits51To12;
        }

        ulong address = table + Index(probe.EntryGpa.Value, target) * 8;
        ulong value = memory.GetValueOrDefault(address);
        if (!memory.ContainsKey(address))
        {
            // Never written: zero for the case, a (not-present) tag in the VM, and never a walk's
            // entry, so the processor set no A/D bit there.
            plan.Known = new Observation { Kind = OutcomeKind.Entry, EntryValue = 0 };
            return address;
        }

        bool windowSlot = IsWindowEntry(address);
        if (windowSlot || !relocation.TryMapPlain(address & ~0xFFFUL, out ulong vmPage))
        {
            // The window slot holds the oracle's entry in the VM, while the case never wrote it.
            // Never a table the case's EPT reaches, so the hardware never set A/D there: the case's value is exact.
            plan.Known = new Observation { Kind = OutcomeKind.Entry, EntryValue = value };
            return address;
        }

        ulong vmAddress = vmPage + (address & 0xFFF);
        plan.Dumped = true;
        plan.CaseEntryValue = value;
        plan.VmEntryValue = vmValues.GetValueOrDefault(vmAddress);
        script.Add(ScriptOp.Dump, (ulong)plan.Id, vmAddress);
        return address;
    }
}

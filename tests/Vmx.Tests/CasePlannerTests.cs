using EptFuzz.Contract;
using EptFuzz.Targets.Vmx.Image;
using EptFuzz.Targets.Vmx.Session;

namespace EptFuzz.Vmx.Tests;

/// <summary>The planner without an emulator: relocation of entries, the window, and what becomes unsupported.</summary>
public sealed class CasePlannerTests
{
    private static readonly EmulatedCpu Cpu = new()
    {
        Engine = "test",
        Capabilities = CpuCapabilities.Default with { MaxPhyAddr = 40 },
        GuestPage1G = true,
        Msrs = new Dictionary<uint, ulong>(),
    };

    private static CaseStep W(ulong address, ulong value) => CaseStep.Of(new MemoryWrite(new Hpa(address), value));

    private static CaseStep Read(int step, ulong gpa) => CaseStep.Of(Probe.ForAccess(step, Access.Physical(AccessKind.Read, new Gpa(gpa))));

    private static List<CaseStep> Tables(ulong leaf) =>
    [
        W(0x1000, 0x2007), W(0x2000, 0x3007), W(0x3000, 0x4007), W(0x4000, leaf), CaseStep.OfEptp(0x105E),
    ];

    [Fact]
    public void Plan_RewritesOnlyAddressFields()
    {
        // A PTE with ignored high bits (62:52) and suppress-#VE, plus a reserved bit 45 above the case's MAXPHYADDR 44.
        ulong pte = 0x7FF0_0000_0000_0000UL | (1UL << 45) | 0x4020_0000 | 0x37;
        var steps = Tables(pte);
        steps.Add(Read(1, 0x10));
        var planner = new CasePlanner(steps, CpuCapabilities.Default with { MaxPhyAddr = 44 }, Cpu);
        var (script, probes, problem) = planner.Plan();
        Assert.Null(problem);
        Assert.True(probes.Single().Runs);
        var r = planner.Relocation;
        ulong vmTarget = r.Tagged4KPages[0x4020_0000];
        Assert.Equal(pte & ~EptEntryMask(44) | vmTarget, planner.RelocateEntry(pte, EptLevel.Pte));
        Assert.Equal(r.PlainPages[0x3000] | 7, planner.RelocateEntry(0x3007, EptLevel.Pdpte));
        // A 2M leaf misaligned in bit 13 keeps its misalignment after relocation.
        Assert.Equal(0x4060_2000UL & 0x1FFFFF, planner.RelocateEntry(0x4060_20B7, EptLevel.Pde) & 0x1FF000);
        Assert.NotEmpty(script.ToBytes());
    }

    [Fact]
    public void Plan_EntryProbeUnderAnEptpOfInvalidWalkLength_ReachesNothing()
    {
        // EPTP[5:3] = 1 is no walk length (only 3 and 4 are), so even the root's table is not walked.
        var steps = new List<CaseStep> { CaseStep.OfEptp(0x8aa500e), CaseStep.Of(Probe.ForEntry(1, new Gpa(0), EptLevel.Pde)) };
        var (_, probes, problem) = new CasePlanner(steps, CpuCapabilities.Default with { MaxPhyAddr = 40 }, Cpu).Plan();
        Assert.Null(problem);
        Assert.Equal(new Observation { Kind = OutcomeKind.EntryNotReached }, probes.Single().Known);
    }

    [Fact]
    public void Plan_WindowAvoidsWhereTheCasesGuestWalksGo()
    {
        // The guest PML4 at GPA 0 (case page 0x4020_0000) maps GVA 0 through a PDPT at GPA
        // 0x80_0000_0000: PML4 slot 1, which the case's EPT never maps, so the window must not go there.
        var steps = Tables(0x4020_0037);
        steps.Add(W(0x4020_0000, 0x80_0000_0000 | 0x27));
        steps.Add(CaseStep.Of(new GuestPaging { Enabled = true, Cr3 = new Gpa(0) }));
        steps.Add(CaseStep.Of(Probe.ForAccess(1, Access.ThroughPaging(AccessKind.Read, new Gva(0x1000), 0))));
        var planner = new CasePlanner(steps, CpuCapabilities.Default with { MaxPhyAddr = 40 }, Cpu);
        Assert.Null(planner.Plan().Problem);
        Assert.Equal((0, 511), (planner.WindowIndex, planner.WindowPdptSlot));
    }

    [Fact]
    public void Plan_WindowAvoidsTheCaseRootSlotsAndProbeRegions()
    {
        var steps = Tables(0x4020_0037);
        steps.Add(Read(1, 0x10));
        var planner = new CasePlanner(steps, CpuCapabilities.Default with { MaxPhyAddr = 40 }, Cpu);
        Assert.Null(planner.Plan().Problem);
        Assert.Equal(1, planner.WindowIndex); // below 2^40 only PML4 slots 0 and 1 exist; the case uses 0

        var wide = Cpu with { Capabilities = Cpu.Capabilities with { MaxPhyAddr = 46 } };
        var widePlanner = new CasePlanner([.. steps, W(0x1000 + 127 * 8, 0x5007), Read(2, 126UL << 39)], CpuCapabilities.Default with { MaxPhyAddr = 46 }, wide);
        Assert.Null(widePlanner.Plan().Problem);
        Assert.Equal(125, widePlanner.WindowIndex);

        // Slot 1 given an entry by the case as well: the window hangs from a free PDPT slot of slot 0.
        var deeper = new CasePlanner([.. steps, W(0x1008, 0x5007)], CpuCapabilities.Default with { MaxPhyAddr = 40 }, Cpu);
        var (deeperScript, _, deeperProblem) = deeper.Plan();
        Assert.Null(deeperProblem);
        Assert.Equal((0, 511), (deeper.WindowIndex, deeper.WindowPdptSlot));
        Assert.Equal(511UL << 30, deeper.WindowBase);
        ulong vmHook = deeper.Relocation.PlainPages[0x2000] + 511 * 8;
        Assert.Contains(Commands(deeperScript), c => c.Op == (ulong)ScriptOp.Write && c.A == vmHook && c.B == (KernelLayout.WindowEptPd | 7UL));

        // A hypervisor clearing the root (zero writes) leaves slot 1 free; the VM keeps the oracle's entry there.
        var cleared = new CasePlanner([W(0x1000, 0), W(0x1008, 0), .. steps], CpuCapabilities.Default with { MaxPhyAddr = 40 }, Cpu);
        var (script, _, problem) = cleared.Plan();
        Assert.Null(problem);
        Assert.Equal(1, cleared.WindowIndex);
        ulong vmSlot = cleared.Relocation.PlainPages[0x1000] + 8;
        var writes = Commands(script).Where(c => c.Op == (ulong)ScriptOp.Write && c.A == vmSlot).Select(c => c.B).ToList();
        Assert.NotEmpty(writes);
        Assert.All(writes, v => Assert.Equal(KernelLayout.WindowEptPdpt | 7UL, v));
    }

    [Fact]
    public void Plan_NarrowerCaseMaxPhyAddrWithBitsInBetween_IsUnsupported()
    {
        var steps = Tables((1UL << 38) | 0x37);
        steps.Add(Read(1, 0x10));
        var (_, probes, problem) = new CasePlanner(steps, CpuCapabilities.Default with { MaxPhyAddr = 36 }, Cpu).Plan();
        Assert.Contains("bits 36-39", problem);
        Assert.Equal(problem, probes.Single().Unsupported);
    }

    [Fact]
    public void Plan_OneGigabyteLeaf_PlacesTouchedPagesAtTheirOffsetInTheGigabyteBlock()
    {
        List<CaseStep> steps = [W(0x1000, 0x2007), W(0x2000, 0x8000_00B7), CaseStep.OfEptp(0x105E), Read(1, 0x12_3456)];
        var planner = new CasePlanner(steps, CpuCapabilities.Default with { MaxPhyAddr = 40 }, Cpu);
        var (_, probes, problem) = planner.Plan();
        Assert.Null(problem);
        Assert.True(probes.Single().Runs);
        var run = Assert.Single(planner.Relocation.Runs);
        Assert.Equal(new TaggedRun(KernelLayout.GigabyteBlock + 0x12_3000, 0x8012_3000, 1, PageSize.Size1G, 0), run);
        Assert.Equal(KernelLayout.GigabyteBlock | 0xB7, planner.RelocateEntry(0x8000_00B7, EptLevel.Pdpte));
        Assert.Equal(KernelLayout.GigabyteBlock + (64UL << 20), planner.Relocation.RamBytesNeeded);

        // Two 1 GiB leaves touched at the same offset cannot share the VM's one block.
        List<CaseStep> clash = [.. steps, W(0x2008, 0xC000_00B7), Read(2, 0x4012_3456)];
        Assert.Contains("share the offset", new CasePlanner(clash, CpuCapabilities.Default with { MaxPhyAddr = 40 }, Cpu).Plan().Problem);
    }

    [Fact]
    public void Plan_ProbesTheGuestCannotExpress_AreUnsupportedOneByOne()
    {
        var steps = Tables(0x4020_0037);
        steps.Add(Read(1, 1UL << 41));
        steps.Add(CaseStep.Of(Probe.ForAccess(2, Access.Physical(AccessKind.Fetch, new Gpa(0xFFA)))));
        steps.Add(CaseStep.Of(Probe.ForAccess(3, Access.ThroughPaging(AccessKind.Read, new Gva(0x1000), 3))));
        steps.Add(CaseStep.Of(Probe.ForEntry(4, new Gpa(0x200000), EptLevel.Pte)));
        steps.Add(CaseStep.Of(Probe.ForEntry(5, new Gpa(0), EptLevel.Pte)));
        steps.Add(CaseStep.Of(Probe.ForEntry(6, new Gpa(1UL << 39), EptLevel.Pml4e)));
        var (_, probes, problem) = new CasePlanner(steps, CpuCapabilities.Default with { MaxPhyAddr = 40 }, Cpu).Plan();
        Assert.Null(problem);
        Assert.Contains("MAXPHYADDR", probes[0].Unsupported);
        Assert.Contains("last 7 bytes", probes[1].Unsupported);
        Assert.True(probes[2].Runs && !probes[2].ThroughCasePaging); // guest paging off: a guest-physical access
        Assert.Equal(OutcomeKind.EntryNotReached, probes[3].Known!.Kind); // PD slot 1 is empty
        Assert.True(probes[4].Dumped);
        Assert.Equal(0x4020_0037UL, probes[4].CaseEntryValue);
        // The root's window slot (1) holds the oracle's own entry in the VM: the case's value (0) is the answer.
        Assert.Equal(new Observation { Kind = OutcomeKind.Entry, EntryValue = 0 }, probes[5].Known);
    }

    [Fact]
    public void Plan_GuestEntryWithBitsBetweenTheWidths_IsUnsupported()
    {
        // Guest tables in one self-referencing page at GPA 0 (HPA 0x4020_0000); PTE 1 points at 2^41,
        // a valid GPA for the case (maxphyaddr 46) but a reserved bit for the emulated CPU (40).
        var steps = Tables(0x4020_0037);
        steps.Add(W(0x4020_0000, 0x7));
        steps.Add(W(0x4020_0008, (1UL << 41) | 0x7));
        steps.Add(CaseStep.Of(new GuestPaging { Enabled = true, Cr3 = new Gpa(0) }));
        steps.Add(CaseStep.Of(Probe.ForAccess(1, Access.ThroughPaging(AccessKind.Read, new Gva(0x1000), 0))));
        steps.Add(CaseStep.Of(Probe.ForAccess(2, Access.ThroughPaging(AccessKind.Read, new Gva(0x0), 0))));
        var (_, probes, problem) = new CasePlanner(steps, CpuCapabilities.Default with { MaxPhyAddr = 46 }, Cpu).Plan();
        Assert.Null(problem);
        Assert.Contains("bits 40-45", probes[0].Unsupported);
        Assert.True(probes[1].Runs && probes[1].ThroughCasePaging);
    }

    [Fact]
    public void Plan_UntouchedLeaves_ShareAZeroedStandIn()
    {
        // 2 GiB identity-mapped with 1024 2M leaves (two page directories); one probe touches one of them.
        List<CaseStep> steps = [W(0x1000, 0x2007), W(0x2000, 0x3007), W(0x2008, 0x4007)];
        for (ulong i = 0; i < 1024; i++)
        {
            steps.Add(W(0x3000 + i * 8, (i << 21) | 0xB7));
        }

        steps.Add(CaseStep.OfEptp(0x105E));
        steps.Add(Read(1, 0x4020_1234));
        var planner = new CasePlanner(steps, CpuCapabilities.Default with { MaxPhyAddr = 40 }, Cpu);
        var (_, probes, problem) = planner.Plan();
        Assert.Null(problem);
        Assert.True(probes.Single().Runs);
        var r = planner.Relocation;
        Assert.Equal([0x4020_0000UL], r.Blocks2M.Keys);
        var standIn = Assert.Single(r.StandIns());
        Assert.Equal(512, standIn.Pages);
        // Every other leaf points at the stand-in, keeping its own bits.
        Assert.Equal(standIn.Vm | 0xB7, planner.RelocateEntry(0x0000_00B7, EptLevel.Pde));
        Assert.Equal(r.Blocks2M[0x4020_0000] | 0xB7, planner.RelocateEntry(0x4020_00B7, EptLevel.Pde));
    }

    private static IEnumerable<(ulong Op, ulong A, ulong B, ulong C)> Commands(ScriptBuilder script)
    {
        byte[] bytes = script.ToBytes();
        for (int i = 0; i < bytes.Length; i += ScriptBuilder.CommandBytes)
        {
            yield return (BitConverter.ToUInt64(bytes, i) & 0xFF, BitConverter.ToUInt64(bytes, i + 8), BitConverter.ToUInt64(bytes, i + 16), BitConverter.ToUInt64(bytes, i + 24));
        }
    }

    private static ulong EptEntryMask(int maxPhyAddr) => ((1UL << maxPhyAddr) - 1) & ~0xFFFUL;
}

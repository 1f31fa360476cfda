using EptFuzz.Contract;
using EptFuzz.Targets.Model;
using RuleId = EptFuzz.Reference.Rules.RuleId;

namespace EptFuzz.Targets.Model.Tests;

/// <summary>The model through the shared contract, as the harness drives it.</summary>
public sealed class ModelTargetTests
{
    private const ulong Eptp4Wb = 0x1000 | 6 | (3 << 3);
    private const ulong AdEnable = 1 << 6;
    private const ulong Pml4e = 0x1000, Pdpte = 0x2000, Pde = 0x3000, Pte = 0x4028;
    private const ulong PageGpa = 0x5000, PageHpa = 0x9_0000;
    private const ulong LeafRwxWb = 7 | (6 << 3);

    /// <summary>A session whose EPT maps GPA 0x5000 to HPA 0x90000 (tables at 0x1000-0x4fff).</summary>
    private static ITargetSession Mapped(ulong eptp = Eptp4Wb, CpuCapabilities? cpu = null, ulong leaf = LeafRwxWb)
    {
        ITargetSession session = new ModelTarget().Open(cpu ?? CpuCapabilities.Default);
        session.Write(new MemoryWrite(new Hpa(Pml4e), 0x2000 | 7));
        session.Write(new MemoryWrite(new Hpa(Pdpte), 0x3000 | 7));
        session.Write(new MemoryWrite(new Hpa(Pde), 0x4000 | 7));
        session.Write(new MemoryWrite(new Hpa(Pte), PageHpa | leaf));
        session.SetEptp(eptp);
        return session;
    }

    private static Observation Submit(ITargetSession session, Probe probe) =>
        session.Submit(probe) ?? throw new InvalidOperationException("the model answers immediately");

    [Fact]
    public void Target_DescribesItself()
    {
        var target = new ModelTarget();
        Assert.Equal("model", target.Name);
        Assert.True(target.Traits.HasFlag(TargetTraits.Walk | TargetTraits.AccessedDirtyWrites | TargetTraits.Entries | TargetTraits.VmEntry | TargetTraits.Immediate | TargetTraits.Mbec | TargetTraits.AdvancedExitInfo | TargetTraits.MemoryType));
        Assert.False(target.Traits.HasFlag(TargetTraits.CachesTranslations));
        Assert.Equal(96, target.RuleNames.Count);
        Assert.Equal("EPT-MISCONFIG-1", target.RuleNames[(int)RuleId.EptMisconfig1]);
    }

    [Fact]
    public void GpaRead_Translated_WithWalkAndRules()
    {
        using ITargetSession session = Mapped();
        Observation observation = Submit(session, Probe.ForAccess(1, Access.Physical(AccessKind.Read, new Gpa(PageGpa + 0x10))));

        Assert.Equal(OutcomeKind.Translated, observation.Kind);
        Assert.Equal(new Hpa(PageHpa + 0x10), observation.Hpa);
        Assert.Equal(new Gpa(PageGpa + 0x10), observation.Gpa);
        Assert.Equal(PageSize.Size4K, observation.PageSize);
        Assert.Equal(MemoryType.WB, observation.MemoryType);
        Assert.Equal(EptPermissions.ReadAccess | EptPermissions.WriteAccess | EptPermissions.ExecuteAccess, observation.Permissions);
        Assert.Equal(
            [new WalkEntry(WalkStructure.Ept, EptLevel.Pml4e, new Hpa(Pml4e), 0x2007, PageGpa + 0x10),
             new WalkEntry(WalkStructure.Ept, EptLevel.Pdpte, new Hpa(Pdpte), 0x3007, PageGpa + 0x10),
             new WalkEntry(WalkStructure.Ept, EptLevel.Pde, new Hpa(Pde), 0x4007, PageGpa + 0x10),
             new WalkEntry(WalkStructure.Ept, EptLevel.Pte, new Hpa(Pte), PageHpa | LeafRwxWb, PageGpa + 0x10)],
            observation.Walk);
        Assert.Empty(observation.Writes);
        Assert.True(observation.Rules.Contains((int)RuleId.EptWalk2));
        Assert.Empty(session.Finish());
    }

    [Fact]
    public void EptAdWrite_FlagsWritten_AndVisibleToLaterEntryProbe()
    {
        using ITargetSession session = Mapped(Eptp4Wb | AdEnable);
        Observation write = Submit(session, Probe.ForAccess(1, Access.Physical(AccessKind.Write, new Gpa(PageGpa))));

        Assert.Equal(OutcomeKind.Translated, write.Kind);
        Assert.Contains(new MemoryWrite(new Hpa(Pte), PageHpa | LeafRwxWb | 0x300), write.Writes);
        Assert.Contains(new MemoryWrite(new Hpa(Pml4e), 0x2007 | 0x100), write.Writes);

        Observation entry = Submit(session, Probe.ForEntry(2, new Gpa(PageGpa), EptLevel.Pte));
        Assert.Equal(OutcomeKind.Entry, entry.Kind);
        Assert.Equal(PageHpa | LeafRwxWb | 0x300, entry.EntryValue);

        // The flags are now set: a second write writes nothing.
        Assert.Empty(Submit(session, Probe.ForAccess(3, Access.Physical(AccessKind.Write, new Gpa(PageGpa)))).Writes);
    }

    [Fact]
    public void ReadOnlyPage_Write_ViolationFields()
    {
        using ITargetSession session = Mapped(leaf: 1 | (6 << 3));
        Observation observation = Submit(session, Probe.ForAccess(1, Access.Physical(AccessKind.Write, new Gpa(PageGpa + 8))));

        Assert.Equal(OutcomeKind.EptViolation, observation.Kind);
        Assert.Equal(0x18aUL, observation.Qualification);
        Assert.Equal(new Gpa(PageGpa + 8), observation.Gpa);
        Assert.True(observation.GuestLinearAddressValid);
        Assert.Equal(PageGpa + 8, observation.GuestLinearAddress);
    }

    [Fact]
    public void WriteOnlyLeaf_Read_Misconfiguration()
    {
        using ITargetSession session = Mapped(leaf: 2 | (6 << 3));
        Observation observation = Submit(session, Probe.ForAccess(1, Access.Physical(AccessKind.Read, new Gpa(PageGpa))));

        Assert.Equal(OutcomeKind.EptMisconfiguration, observation.Kind);
        Assert.Equal(new Gpa(PageGpa), observation.Gpa);
        Assert.Equal(0UL, observation.Qualification);
    }

    [Fact]
    public void InvalidEptp_AccessIsNoVmEntry_VmEntryProbeFails()
    {
        using ITargetSession session = Mapped(eptp: 0x1000 | 1 | (3 << 3));
        Assert.Equal(OutcomeKind.NoVmEntry, Submit(session, Probe.ForAccess(1, Access.Physical(AccessKind.Read, new Gpa(PageGpa)))).Kind);
        Observation entry = Submit(session, Probe.ForVmEntry(2));
        Assert.Equal(OutcomeKind.VmEntry, entry.Kind);
        Assert.False(entry.VmEntryOk);

        session.SetEptp(Eptp4Wb);
        Assert.True(Submit(session, Probe.ForVmEntry(3)).VmEntryOk);
    }

    [Fact]
    public void MbecWithoutCpuSupport_NoVmEntry()
    {
        using ITargetSession session = Mapped();
        session.SetControls(new VmxControls(Mbec: true));
        Assert.Equal(OutcomeKind.NoVmEntry, Submit(session, Probe.ForAccess(1, Access.Physical(AccessKind.Fetch, new Gpa(PageGpa)))).Kind);
    }

    [Fact]
    public void EntryProbe_NotReached_PastNotPresentOrAboveWalkLength()
    {
        using ITargetSession session = Mapped();
        Assert.Equal(OutcomeKind.EntryNotReached, Submit(session, Probe.ForEntry(1, new Gpa(0x4000_0000), EptLevel.Pde)).Kind);
        Assert.Equal(OutcomeKind.EntryNotReached, Submit(session, Probe.ForEntry(2, new Gpa(PageGpa), EptLevel.Pml5e)).Kind);
        Observation pdpte = Submit(session, Probe.ForEntry(3, new Gpa(0x4000_0000), EptLevel.Pdpte));
        Assert.Equal(OutcomeKind.Entry, pdpte.Kind);
        Assert.Equal(0UL, pdpte.EntryValue);
    }

    [Fact]
    public void GvaRead_WalkListsEptEntriesBeforeEachGuestEntry_FinalLast()
    {
        // Guest tables: PML4 at GPA 0x5000 (the mapped page) pointing to itself at every level,
        // so the linear address 0 maps to GPA 0x5000 through four reads of the same entry.
        using ITargetSession session = Mapped();
        const ulong selfEntry = PageGpa | 0x7 | 0x20;
        session.Write(new MemoryWrite(new Hpa(PageHpa), selfEntry));
        session.SetGuestPaging(new GuestPaging { Enabled = true, Cr3 = new Gpa(PageGpa) });
        Observation observation = Submit(session, Probe.ForAccess(1, Access.ThroughPaging(AccessKind.Read, new Gva(0x10), cpl: 3)));

        Assert.Equal(OutcomeKind.Translated, observation.Kind);
        Assert.Equal(new Hpa(PageHpa + 0x10), observation.Hpa);
        WalkStructure[] expected = [.. Enumerable.Repeat<WalkStructure[]>([WalkStructure.Ept, WalkStructure.Ept, WalkStructure.Ept, WalkStructure.Ept, WalkStructure.Guest], 4).SelectMany(s => s),
            WalkStructure.Ept, WalkStructure.Ept, WalkStructure.Ept, WalkStructure.Ept];
        Assert.Equal(expected, observation.Walk.Select(w => w.Structure));
        Assert.Equal([EptLevel.Pml4e, EptLevel.Pdpte, EptLevel.Pde, EptLevel.Pte], observation.Walk.Where(w => w.Structure == WalkStructure.Guest).Select(w => w.Level));
        Assert.All(observation.Walk.Where(w => w.Structure == WalkStructure.Guest), w => Assert.Equal(0x10UL, w.Translating));
        Assert.Empty(observation.Writes);
    }

    [Fact]
    public void GvaUserRead_SupervisorGuestPage_PageFault()
    {
        using ITargetSession session = Mapped();
        session.Write(new MemoryWrite(new Hpa(PageHpa), PageGpa | 0x3 | 0x20));
        session.SetGuestPaging(new GuestPaging { Enabled = true, Cr3 = new Gpa(PageGpa) });
        Observation observation = Submit(session, Probe.ForAccess(1, Access.ThroughPaging(AccessKind.Read, new Gva(0), cpl: 3)));

        Assert.Equal(OutcomeKind.GuestPageFault, observation.Kind);
        Assert.Equal(5u, observation.ErrorCode);
    }

    [Fact]
    public void MaxPhyAddrOutOfRange_Unsupported()
    {
        using ITargetSession session = new ModelTarget().Open(new CpuCapabilities { MaxPhyAddr = 60 });
        Assert.NotNull(session.UnsupportedReason);
        Assert.Equal(OutcomeKind.Unsupported, Submit(session, Probe.ForVmEntry(1)).Kind);
    }
}

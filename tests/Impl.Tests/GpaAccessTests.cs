using EptFuzz.Contract;
using static EptFuzz.Impl.Tests.Rig;

namespace EptFuzz.Impl.Tests;

/// <summary>Guest-physical accesses (CR0.PG = 0) on the virtual CPU: translations, violations, misconfigurations, A/D.</summary>
public sealed class GpaAccessTests
{
    [Fact]
    public void Read_TranslatesThroughFourLevels()
    {
        var rig = new Rig();
        rig.Map(0x200000, 0x40200000, M2, Rwx, MemoryType.WT);
        rig.Session.Cpu.CachingEnabled = false;
        Observation read = rig.Probe(AccessKind.Read, 0x201234);
        Assert.Equal(OutcomeKind.Translated, read.Kind);
        Assert.Equal(0x40201234UL, read.Hpa.Value);
        Assert.Equal(PageSize.Size2M, read.PageSize);
        Assert.Equal(0x201234UL, read.Gpa.Value);
        Assert.Equal(Rwx, read.Permissions);
        // PAT type WB with paging off, EPT WT: Table 11-7 gives WT.
        Assert.Equal(MemoryType.WT, read.MemoryType);
        Assert.Equal([EptLevel.Pml4e, EptLevel.Pdpte, EptLevel.Pde], read.Walk.Select(w => w.Level));
        Assert.All(read.Walk, w => Assert.Equal(WalkStructure.Ept, w.Structure));
        Assert.Empty(read.Writes);
    }

    public static TheoryData<int, bool> PermissionCases()
    {
        var data = new TheoryData<int, bool>();
        for (int bits = 0; bits < 8; bits++)
        {
            if ((bits & 1) != 0 || bits is 0 or 4)
            {
                data.Add(bits, false);
                data.Add(bits, true);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(PermissionCases))]
    public void EveryPermissionSet_AllowsExactlyItsAccesses(int bits, bool advancedExitInfo)
    {
        var rig = new Rig(CpuCapabilities.Default with { AdvancedExitInfo = advancedExitInfo });
        var permissions = (EptPermissions)bits;
        rig.Map(0x3000, 0x8000, K4, permissions);
        foreach ((AccessKind kind, EptPermissions needed, ulong accessBit) in new[]
        {
            (AccessKind.Read, EptPermissions.ReadAccess, 1UL),
            (AccessKind.Write, EptPermissions.WriteAccess, 2UL),
            (AccessKind.Fetch, EptPermissions.ExecuteAccess, 4UL),
        })
        {
            Observation observation = rig.Probe(kind, 0x3010);
            if ((permissions & needed) != 0)
            {
                Assert.Equal(OutcomeKind.Translated, observation.Kind);
                Assert.Equal(0x8010UL, observation.Hpa.Value);
            }
            else
            {
                Assert.Equal(OutcomeKind.EptViolation, observation.Kind);
                ulong expected = accessBit | ((ulong)bits << 3) | 0x180 | (advancedExitInfo ? 0x600UL : 0);
                Assert.Equal(expected, observation.Qualification);
                Assert.Equal(0x3010UL, observation.Gpa.Value);
                Assert.True(observation.GuestLinearAddressValid);
                Assert.Equal(0x3010UL, observation.GuestLinearAddress);
            }
        }
    }

    [Fact]
    public void NotPresent_ViolationWithoutPermissionBits()
    {
        var rig = new Rig();
        rig.Map(0x1000, 0x1000, K4);
        Observation write = rig.Probe(AccessKind.Write, 0x2008);
        Assert.Equal(OutcomeKind.EptViolation, write.Kind);
        Assert.Equal(48, rig.Session.Cpu.Access(Access.Physical(AccessKind.Write, new Gpa(0x2008))).ExitReason);
        Assert.Equal(0x182UL, write.Qualification);
        Assert.Equal(0x2008UL, write.Gpa.Value);
        Observation far = rig.Probe(AccessKind.Read, 0x80_0000_0000);
        Assert.Equal(0x181UL, far.Qualification);
        Assert.Single(far.Walk);
    }

    [Fact]
    public void GpaAbove48BitsWithFourLevels_ViolationWithNoEntryRead()
    {
        var rig = new Rig();
        Observation read = rig.Probe(AccessKind.Read, 1UL << 49);
        Assert.Equal(OutcomeKind.EptViolation, read.Kind);
        Assert.Equal(0x181UL, read.Qualification);
        Assert.Empty(read.Walk);
    }

    [Fact]
    public void Misconfigurations_BeatPermissionsAndNeedNoCapabilityTrick()
    {
        var rig = new Rig(CpuCapabilities.Default with { ExecuteOnly = false, Page2M = true });
        rig.Map(0x1000, 0x5000, K4);
        // Write without read in the leaf.
        rig.Ok(h => h.Edit(new Gpa(0x1000), EptLevel.Pte, 0, 1, null));
        rig.Ok(h => h.Invept(InveptType.Global));
        Observation read = rig.Probe(AccessKind.Read, 0x1000);
        Assert.Equal(OutcomeKind.EptMisconfiguration, read.Kind);
        Assert.Equal(49, rig.Session.Cpu.Access(Access.Physical(AccessKind.Read, new Gpa(0x1000))).ExitReason);
        Assert.Equal(0x1000UL, read.Gpa.Value);
        Assert.Equal(0UL, read.Qualification);
        Assert.False(read.GuestLinearAddressValid);

        // Execute-only where the processor lacks it.
        rig.Ok(h => h.Edit(new Gpa(0x1000), EptLevel.Pte, 4, 7, null));
        Assert.Equal(OutcomeKind.EptMisconfiguration, rig.Probe(AccessKind.Fetch, 0x1000).Kind);

        // Reserved memory type 7 in the leaf, under a read-only PML4E: the misconfiguration wins over the write permission.
        rig.Ok(h => h.Edit(new Gpa(0x1000), EptLevel.Pte, 0x3F, 0x3F, null));
        rig.Ok(h => h.Edit(new Gpa(0x1000), EptLevel.Pml4e, 0, 6, null));
        Assert.Equal(OutcomeKind.EptMisconfiguration, rig.Probe(AccessKind.Write, 0x1000).Kind);

        // Reserved bit 3 in the PML4E, and an address bit at MAXPHYADDR in the leaf.
        rig.Ok(h => h.Edit(new Gpa(0x1000), EptLevel.Pte, 0x37, 0x3F, null));
        Assert.Equal(OutcomeKind.EptViolation, rig.Probe(AccessKind.Write, 0x1000).Kind);
        rig.Ok(h => h.Edit(new Gpa(0x1000), EptLevel.Pte, 1UL << 46, 0, null));
        Assert.Equal(OutcomeKind.EptMisconfiguration, rig.Probe(AccessKind.Read, 0x1000).Kind);
    }

    [Fact]
    public void HugePageBitWithoutCapability_Misconfiguration()
    {
        var rig = new Rig(CpuCapabilities.Default with { Page1G = false });
        rig.Map(0x1000, 0x5000, K4);
        rig.Ok(h => h.Edit(new Gpa(0x1000), EptLevel.Pdpte, 0x30, 0, new Hpa(0x4000_0000)));
        Assert.Equal(OutcomeKind.EptMisconfiguration, rig.Probe(AccessKind.Read, 0x1000).Kind);
    }

    [Fact]
    public void AccessedDirty_SetOnPerformedAccessesOnly()
    {
        var rig = new Rig(eptp: new EptpRequest { AccessedDirty = true });
        rig.Map(0x1000, 0x5000, K4, EptPermissions.ReadAccess);
        Observation write = rig.Probe(AccessKind.Write, 0x1000);
        Assert.Equal(OutcomeKind.EptViolation, write.Kind);
        Assert.Empty(write.Writes);

        Observation read = rig.Probe(AccessKind.Read, 0x1000);
        Assert.Equal(4, read.Writes.Count);
        Assert.All(read.Writes, w => Assert.Equal(0x100UL, w.Value & 0x300));
        Assert.Empty(rig.Probe(AccessKind.Read, 0x1000).Writes);

        rig.Ok(h => h.Protect(new Gpa(0x1000), K4, EptPermissions.ReadAccess | EptPermissions.WriteAccess));
        Observation dirty = rig.Probe(AccessKind.Write, 0x1000);
        // The protect rewrote the leaf (A clear again); upper entries kept A.
        MemoryWrite leaf = Assert.Single(dirty.Writes);
        Assert.Equal(0x300UL, leaf.Value & 0x300);
        Assert.Equal(1UL, rig.Entry(0x1000, EptLevel.Pte).EntryValue >> 9 & 1);
    }

    [Fact]
    public void VmEntryChecks_GateEveryAccess()
    {
        var rig = new Rig();
        rig.Map(0, 0, K4);
        Assert.True(rig.Session.Submit(Probe.ForVmEntry(0))!.VmEntryOk);
        ulong eptp = rig.Hypervisor.Eptp;
        foreach (ulong bad in new[] { (eptp & ~7UL) | 1, (eptp & ~0x38UL) | (4 << 3), eptp | 0x80, eptp | (1UL << 46) })
        {
            rig.Ok(h => h.SetEptp(new EptpRequest { Raw = bad }));
            Assert.False(rig.Session.Submit(Probe.ForVmEntry(0))!.VmEntryOk);
            Assert.Equal(OutcomeKind.NoVmEntry, rig.Probe(AccessKind.Read, 0).Kind);
        }

        rig.Ok(h => h.SetEptp(new EptpRequest { Raw = eptp }));
        rig.Ok(h => h.SetControls(new VmxControls(Mbec: true)));
        Assert.False(rig.Session.Submit(Probe.ForVmEntry(0))!.VmEntryOk);
    }

    [Fact]
    public void Mbec_GpaFetchIsUserModeAndNeedsUserExecute()
    {
        var rig = new Rig(CpuCapabilities.Default with { Mbec = true });
        rig.Ok(h => h.SetControls(new VmxControls(Mbec: true)));
        rig.Map(0x1000, 0x1000, K4, EptPermissions.ReadAccess | EptPermissions.ExecuteAccess);
        rig.Map(0x2000, 0x2000, K4, EptPermissions.ReadAccess | EptPermissions.UserModeExecute);
        Observation denied = rig.Probe(AccessKind.Fetch, 0x1000);
        Assert.Equal(OutcomeKind.EptViolation, denied.Kind);
        Assert.Equal(0x4UL | 0x8 | 0x20 | 0x180, denied.Qualification);
        Observation allowed = rig.Probe(AccessKind.Fetch, 0x2000);
        Assert.Equal(OutcomeKind.Translated, allowed.Kind);
        Assert.Equal(EptPermissions.ReadAccess | EptPermissions.UserModeExecute, allowed.Permissions);
        // A user-execute-only entry is present under the control (EPT-PRESENT-1).
        rig.Ok(h => h.Protect(new Gpa(0x2000), K4, EptPermissions.UserModeExecute));
        Observation read = rig.Probe(AccessKind.Read, 0x2000);
        Assert.Equal(0x1UL | 0x40 | 0x180, read.Qualification);
    }

    [Fact]
    public void IgnorePat_GivesTheEptType()
    {
        var rig = new Rig();
        rig.Map(0x1000, 0x1000, K4, Rwx, MemoryType.WC, ignorePat: true);
        rig.Map(0x2000, 0x2000, K4, Rwx, MemoryType.WP);
        Assert.Equal(MemoryType.WC, rig.Probe(AccessKind.Read, 0x1000).MemoryType);
        Assert.Equal(MemoryType.WP, rig.Probe(AccessKind.Read, 0x2000).MemoryType);
    }
}

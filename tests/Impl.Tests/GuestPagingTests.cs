using EptFuzz.Contract;
using static EptFuzz.Impl.Tests.Rig;

namespace EptFuzz.Impl.Tests;

/// <summary>gva → hpa through the guest's own 4-level tables, each of whose entries is itself translated by EPT.</summary>
public sealed class GuestPagingTests
{
    private const ulong Cr3 = 0x1000;
    private const ulong TablesStart = 0x10000;
    private const ulong TablesEnd = 0x20000;

    /// <summary>EPT maps guest RAM [0, 4 MiB) to host 1 GiB + GPA with 4 KiB pages; guest tables live in the first 128 KiB.</summary>
    private static Rig GuestRig(EptpRequest? eptp = null, GuestPaging? paging = null, CpuCapabilities? cpu = null)
    {
        var rig = new Rig(cpu, eptp);
        rig.Map(0, G1, M2);
        rig.Ok(h => h.Split(new Gpa(0)));
        rig.Map(M2, G1 + M2, M2);
        rig.GuestPaging(paging ?? new GuestPaging { Enabled = true, Cr3 = new Gpa(Cr3) }, TablesStart, TablesEnd);
        return rig;
    }

    [Fact]
    public void GuestTwoMegabytePage_TranslatesGvaToHpa()
    {
        Rig rig = GuestRig();
        rig.Ok(h => h.GMap(new Gva(0x7f_c000_0000), new Gpa(M2), M2, writable: true, user: false, executable: true));
        rig.Session.Cpu.CachingEnabled = false;
        Observation read = rig.ProbeLinear(AccessKind.Read, 0x7f_c012_3458);
        Assert.Equal(OutcomeKind.Translated, read.Kind);
        Assert.Equal(M2 + 0x12_3458, read.Gpa.Value);
        Assert.Equal(G1 + M2 + 0x12_3458, read.Hpa.Value);
        Assert.Equal(PageSize.Size2M, read.PageSize);
        // Three guest entries (PML4E, PDPTE, PDE page), each after its 4-entry EPT walk; the three A
        // write-backs, each an EPT write with its own walk (no TLB here); the final 3-entry walk (2 MiB EPT page).
        Assert.Equal(3 * 5 + 3 * 4 + 3, read.Walk.Count);
        Assert.Equal([WalkStructure.Ept, WalkStructure.Ept, WalkStructure.Ept, WalkStructure.Ept, WalkStructure.Guest], read.Walk.Take(5).Select(w => w.Structure));
        Assert.Equal(Cr3 + G1, read.Walk[4].Address.Value);
        Assert.Equal(TablesStart + 8 * 0x1FF + G1, read.Walk[9].Address.Value);
        // Guest A flags set on all three entries, nothing on EPT (A/D off).
        Assert.Equal(3, read.Writes.Count);
        Assert.All(read.Writes, w => Assert.Equal(GuestAccessed, w.Value & (GuestAccessed | GuestDirty)));

        Observation write = rig.ProbeLinear(AccessKind.Write, 0x7f_c000_0008);
        MemoryWrite dirty = Assert.Single(write.Writes);
        Assert.Equal(GuestAccessed | GuestDirty, dirty.Value & (GuestAccessed | GuestDirty));
    }

    private const ulong GuestAccessed = 1 << 5;
    private const ulong GuestDirty = 1 << 6;

    [Fact]
    public void GuestFaults_ErrorCodes()
    {
        Rig rig = GuestRig(paging: new GuestPaging { Enabled = true, Cr3 = new Gpa(Cr3), Nxe = true, Smep = true });
        rig.Ok(h => h.GMap(new Gva(0x40_0000), new Gpa(0x30_0000), K4, writable: false, user: true, executable: false));
        Assert.Equal(0x0u | 0x4, Fault(rig.ProbeLinear(AccessKind.Read, 0x80_0000, cpl: 3)));
        Assert.Equal(0x1u | 0x2 | 0x4, Fault(rig.ProbeLinear(AccessKind.Write, 0x40_0000, cpl: 3)));
        Assert.Equal(0x1u | 0x2, Fault(rig.ProbeLinear(AccessKind.Write, 0x40_0000, cpl: 0)));
        Assert.Equal(0x1u | 0x10, Fault(rig.ProbeLinear(AccessKind.Fetch, 0x40_0000, cpl: 0)));
        Assert.Equal(OutcomeKind.Translated, rig.ProbeLinear(AccessKind.Read, 0x40_0000, cpl: 3).Kind);

        rig.Ok(h => h.GEdit(new Gva(0x40_0000), EptLevel.Pde, 1UL << 7, 0));
        rig.Ok(h => h.Invept(InveptType.Global));
        rig.Session.SetGuestPaging(rig.Hypervisor.GuestPaging);
        // The PDE now maps a 2 MiB page whose address bits 20:13 hold the page-table address: reserved.
        Assert.Equal(0x1u | 0x8, Fault(rig.ProbeLinear(AccessKind.Read, 0x40_0000, cpl: 0)));
    }

    private static uint Fault(Observation observation)
    {
        Assert.Equal(OutcomeKind.GuestPageFault, observation.Kind);
        Assert.Empty(observation.Writes);
        return observation.ErrorCode;
    }

    [Fact]
    public void ReadOnlyGuestTable_AccessedWriteBackIsAnEptWriteViolation()
    {
        Rig rig = GuestRig();
        rig.Ok(h => h.GMap(new Gva(0x20_0000), new Gpa(0x30_0000), K4, writable: true, user: true, executable: true));
        rig.Ok(h => h.Protect(new Gpa(TablesStart), K4, EptPermissions.ReadAccess));
        Observation read = rig.ProbeLinear(AccessKind.Read, 0x20_0010);
        Assert.Equal(OutcomeKind.EptViolation, read.Kind);
        // Data read + write (the A write-back), readable, GLA valid, not the final access (EPT-GWALK-2).
        Assert.Equal(0x8bUL, read.Qualification);
        Assert.Equal(TablesStart, read.Gpa.Value);
        Assert.Equal(0x20_0010UL, read.GuestLinearAddress);
        // The PML4E's A bit was written before the PDPTE's write-back failed.
        Assert.Single(read.Writes);
    }

    [Fact]
    public void EptAccessedDirty_GuestTableReadsAreWrites()
    {
        Rig rig = GuestRig(new EptpRequest { AccessedDirty = true });
        rig.Ok(h => h.GMap(new Gva(0x20_0000), new Gpa(0x30_0000), K4, writable: true, user: true, executable: true));
        rig.Ok(h => h.Protect(new Gpa(Cr3), K4, EptPermissions.ReadAccess));
        Observation read = rig.ProbeLinear(AccessKind.Read, 0x20_0000);
        Assert.Equal(OutcomeKind.EptViolation, read.Kind);
        Assert.Equal(0x8bUL, read.Qualification);
        Assert.Equal(Cr3, read.Gpa.Value);

        rig.Ok(h => h.Protect(new Gpa(Cr3), K4, Rwx));
        Observation ok = rig.ProbeLinear(AccessKind.Read, 0x20_0000);
        Assert.Equal(OutcomeKind.Translated, ok.Kind);
        // The EPT leaf of each guest table page got D although the guest only read it (EPT-AD-4).
        ulong cr3Leaf = rig.Entry(Cr3, EptLevel.Pte).EntryValue;
        Assert.Equal(0x300UL, cr3Leaf & 0x300);
        ulong dataLeaf = rig.Entry(0x30_0000, EptLevel.Pde).EntryValue;
        Assert.Equal(0x100UL, dataLeaf & 0x300);
    }

    [Fact]
    public void MbecAndAdvancedInfo_SupervisorAddressNeedsSupervisorExecute()
    {
        var cpu = CpuCapabilities.Default with { Mbec = true, AdvancedExitInfo = true };
        Rig rig = GuestRig(cpu: cpu);
        rig.Ok(h => h.SetControls(new VmxControls(Mbec: true)));
        rig.Ok(h => h.GMap(new Gva(0x20_0000), new Gpa(0x30_0000), K4, writable: false, user: false, executable: true));
        rig.Ok(h => h.Protect(new Gpa(0x30_0000), K4, EptPermissions.ReadAccess | EptPermissions.UserModeExecute));
        Observation fetch = rig.ProbeLinear(AccessKind.Fetch, 0x20_0000);
        Assert.Equal(OutcomeKind.EptViolation, fetch.Kind);
        // Fetch, readable, user-executable (bit 6), final, supervisor (bit 9 = 0), read-only (bit 10 = 0), executable (bit 11 = 0).
        Assert.Equal(0x4UL | 0x8 | 0x40 | 0x180, fetch.Qualification);
    }

    [Fact]
    public void GuestPat_SelectsTheTypeCombinedWithEpt()
    {
        // PAT entry 1 (PWT) = WT, entry 3 (PCD|PWT) = UC.
        Rig rig = GuestRig(paging: new GuestPaging { Enabled = true, Cr3 = new Gpa(Cr3), Pat = 0x0007_0406_0007_0406 });
        rig.Ok(h => h.GMap(new Gva(0x20_0000), new Gpa(0x30_0000), K4, writable: true, user: true, executable: true));
        Assert.Equal(MemoryType.WB, rig.ProbeLinear(AccessKind.Read, 0x20_0000).MemoryType);
        rig.Ok(h => h.GEdit(new Gva(0x20_0000), EptLevel.Pte, 1 << 3, 0));
        rig.Ok(h => h.Invept(InveptType.Global));
        Assert.Equal(MemoryType.WT, rig.ProbeLinear(AccessKind.Read, 0x20_0000).MemoryType);
        rig.Ok(h => h.Retype(new Gpa(0x30_0000), K4, MemoryType.WP, false));
        // (EPT WP, PAT WT) → WT per Table 11-7.
        Assert.Equal(MemoryType.WT, rig.ProbeLinear(AccessKind.Read, 0x20_0000).MemoryType);
    }

    [Fact]
    public void GMap_RefusesOverlapsAndExhaustedTableRange()
    {
        Rig rig = GuestRig();
        rig.Ok(h => h.GMap(new Gva(0), new Gpa(0), G1, true, true, true));
        Assert.Equal(ApiResult.Duplicated, rig.Do(h => h.GMap(new Gva(0x1000), new Gpa(0), K4, true, true, true)));
        Assert.Equal(ApiResult.Unaligned, rig.Do(h => h.GMap(new Gva(0x4000_1000), new Gpa(0), M2, true, true, true)));
        Assert.Equal(ApiResult.OutOfRange, rig.Do(h => h.GMap(new Gva(1UL << 47), new Gpa(0), K4, true, true, true)));
        // 16 table pages; every 512 GiB step needs a new PDPT and PD and PT.
        ApiResult last = ApiResult.Ok;
        for (ulong i = 1; i < 12 && last == ApiResult.Ok; i++)
        {
            last = rig.Do(h => h.GMap(new Gva(i << 39), new Gpa(0), K4, true, true, true));
        }

        Assert.Equal(ApiResult.ResourceLimit, last);
    }
}

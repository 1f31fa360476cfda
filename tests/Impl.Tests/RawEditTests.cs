using EptFuzz.Contract;
using static EptFuzz.Impl.Tests.Rig;

namespace EptFuzz.Impl.Tests;

/// <summary>Raw edits and pokes (states the API refuses to make), and the EPTP requests.</summary>
public sealed class RawEditTests
{
    [Fact]
    public void Edit_LeafHpaTurnsADirectoryEntryIntoAPage()
    {
        var rig = new Rig();
        rig.Map(0x1000, 0x5000, K4, Rwx, MemoryType.UC);
        rig.Ok(h => h.Edit(new Gpa(0x1000), EptLevel.Pde, 0x30, 0, new Hpa(0x4000_0000)));
        ulong pde = rig.Entry(0x1000, EptLevel.Pde).EntryValue;
        Assert.Equal(0x4000_0000UL | 0x80 | 0x30 | 7, pde);
        Observation read = rig.Probe(AccessKind.Read, 0x1234);
        Assert.Equal(0x4000_1234UL, read.Hpa.Value);
        Assert.Equal(PageSize.Size2M, read.PageSize);
        // The PTE is no longer reached.
        Assert.Equal(OutcomeKind.EntryNotReached, rig.Entry(0x1000, EptLevel.Pte).Kind);
        Assert.Equal(ApiResult.NotExist, rig.Do(h => h.Edit(new Gpa(0x1000), EptLevel.Pte, 1, 0, null)));
    }

    [Fact]
    public void Edit_RefusesLevelsTheWalkDoesNotReach()
    {
        var rig = new Rig();
        Assert.Equal(ApiResult.NotExist, rig.Do(h => h.Edit(new Gpa(0), EptLevel.Pml5e, 1, 0, null)));
        Assert.Equal(ApiResult.NotExist, rig.Do(h => h.Edit(new Gpa(0), EptLevel.Pdpte, 1, 0, null)));
        // The root's entry is always reached.
        rig.Ok(h => h.Edit(new Gpa(0), EptLevel.Pml4e, 0x3, 0, null));
        Assert.Equal(3UL, rig.Entry(0, EptLevel.Pml4e).EntryValue);
        Assert.Equal(ApiResult.Unaligned, rig.Do(h => h.Edit(new Gpa(0), EptLevel.Pml4e, 0, 0, new Hpa(0x800))));
    }

    [Fact]
    public void Edit_KeepsAccessedDirtyWhenTheCallerMirrorsTheCpuWritesIntoHypervisorMemory()
    {
        var rig = new Rig(eptp: new EptpRequest { AccessedDirty = true });
        rig.Map(0x1000, 0x5000, K4);
        Observation read = rig.Probe(AccessKind.Read, 0x1000);
        // The hypervisor never sees the CPU's A/D writes unless someone copies them in (not journaled).
        foreach (MemoryWrite write in read.Writes)
        {
            rig.Hypervisor.Memory.Write(write.Address, write.Value);
        }

        rig.Ok(h => h.Edit(new Gpa(0x1000), EptLevel.Pte, 1UL << 9, 0, null));
        Assert.Equal(0x300UL, rig.Entry(0x1000, EptLevel.Pte).EntryValue & 0x300);
        // The operations still recognise their own entries with A/D set.
        rig.Ok(h => h.Unmap(new Gpa(0x1000), K4));
        Assert.Equal(1, rig.Hypervisor.Ept.Pool.InUse);
    }

    [Fact]
    public void Poke_WritesHostMemoryAndIsJournaled()
    {
        var rig = new Rig();
        rig.Ok(h => h.Poke(new Hpa(0x9008), 0x1234));
        Assert.Equal(new MemoryWrite(new Hpa(0x9008), 0x1234), Assert.Single(rig.LastEffects).Write);
        Assert.Equal(0x1234UL, rig.Session.Memory.Read(new Hpa(0x9008)));
        Assert.Equal(ApiResult.Unaligned, rig.Do(h => h.Poke(new Hpa(0x9004), 1)));
        Assert.Equal(ApiResult.OutOfRange, rig.Do(h => h.Poke(new Hpa(1UL << 46), 1)));
    }

    [Fact]
    public void RawEptp_OperationsKeepTheOwnRootAndInveptGlobally()
    {
        var rig = new Rig();
        ulong own = rig.Hypervisor.Eptp;
        Assert.Equal(rig.Hypervisor.Ept.Root | 0x1E, own);
        rig.Ok(h => h.SetEptp(new EptpRequest { Raw = 0x1234_5000 | 0x5E }));
        Assert.Equal(0x1234_505EUL, rig.Hypervisor.Eptp);
        rig.Map(0x1000, 0x5000, K4);
        Assert.True(rig.Hypervisor.Ept.TryTranslate(new Gpa(0x1000), out _));
        rig.Ok(h => h.Protect(new Gpa(0x1000), K4, EptPermissions.ReadAccess));
        Assert.Equal(InveptType.Global, rig.LastEffects[^1].InveptType);
        rig.Ok(h => h.SetEptp(new EptpRequest { MemoryType = MemoryType.UC, AccessedDirty = true }));
        Assert.Equal(rig.Hypervisor.Ept.Root | 0x58, rig.Hypervisor.Eptp);
    }
}

using EptFuzz.Contract;
using static EptFuzz.Impl.Tests.Rig;

namespace EptFuzz.Impl.Tests;

/// <summary>The TLB: stale translations survive raw writes until INVEPT; dirty tracking; zero allocations.</summary>
public sealed class TlbTests
{
    [Fact]
    public void StaleTranslation_SurvivesRawEditUntilInvept()
    {
        var rig = new Rig();
        rig.Map(0x1000, 0x5000, K4);
        Assert.Equal(OutcomeKind.Translated, rig.Probe(AccessKind.Read, 0x1000).Kind);
        // A raw edit is a plain memory write: no INVEPT is journaled.
        rig.Ok(h => h.Edit(new Gpa(0x1000), EptLevel.Pte, 0, 7, null));
        Assert.DoesNotContain(rig.LastEffects, e => e.Kind == EffectKind.Invept);
        Observation stale = rig.Probe(AccessKind.Read, 0x1000);
        Assert.Equal(OutcomeKind.Translated, stale.Kind);
        Assert.Empty(stale.Walk);

        Assert.Equal(1, rig.Session.Cpu.Tlb.ValidCount);
        rig.Session.Invept(InveptType.SingleContext);
        Assert.Equal(0, rig.Session.Cpu.Tlb.ValidCount);
        Observation fresh = rig.Probe(AccessKind.Read, 0x1000);
        Assert.Equal(OutcomeKind.EptViolation, fresh.Kind);
        Assert.Equal(4, fresh.Walk.Count);
    }

    [Fact]
    public void Invalidations_DropExactlyWhatTheyName_AndReleasedArraysComeBackEmpty()
    {
        const ulong a = 0x7000, b = 0x9000;
        var tlb = new EptFuzz.Impl.Cpu.TranslationCache();
        // Pages 0..99 tagged a and 100..199 tagged b land in distinct slots of every array.
        for (ulong page = 0; page < 200; page++)
        {
            ulong tag = page < 100 ? a : b;
            foreach (EptLevel level in (EptLevel[])[EptLevel.Pte, EptLevel.Pde, EptLevel.Pdpte])
            {
                tlb.Insert(new EptFuzz.Impl.Cpu.PhysicalMapping { Tag = tag, PageNumber = page, Level = level, Valid = true });
            }

            tlb.Insert(new EptFuzz.Impl.Cpu.CombinedMapping { Tag = tag, PageNumber = page, Valid = true }, 0);
        }

        Assert.Equal(800, tlb.ValidCount);
        tlb.Invalidate(a);
        Assert.Equal(400, tlb.ValidCount);
        for (ulong page = 0; page < 200; page++)
        {
            ulong tag = page < 100 ? a : b;
            Assert.Equal(tag == b, tlb.TryGetPhysical(tag, page << 12, out _));
            Assert.Equal(tag == b, tlb.TryGetPhysical(tag, page << 30, out _));
            Assert.Equal(tag == b, tlb.TryGetCombined(tag, page << 12, out _));
        }

        tlb.InvalidateCombined();
        Assert.Equal(300, tlb.ValidCount);
        Assert.False(tlb.TryGetCombined(b, 150UL << 12, out _));
        Assert.True(tlb.TryGetPhysical(b, 150UL << 21, out _));
        tlb.Insert(new EptFuzz.Impl.Cpu.PhysicalMapping { Tag = a, PageNumber = 5, Level = EptLevel.Pte, Valid = true });
        tlb.InvalidateAll();
        Assert.Equal(0, tlb.ValidCount);

        // Arrays go back to this thread's pool: a new cache that takes them finds nothing valid.
        tlb.Insert(new EptFuzz.Impl.Cpu.PhysicalMapping { Tag = a, PageNumber = 7, Level = EptLevel.Pte, Valid = true });
        tlb.Release();
        var next = new EptFuzz.Impl.Cpu.TranslationCache();
        next.Insert(new EptFuzz.Impl.Cpu.PhysicalMapping { Tag = b, PageNumber = 300, Level = EptLevel.Pte, Valid = true });
        Assert.Equal(1, next.ValidCount);
        Assert.False(next.TryGetPhysical(a, 7UL << 12, out _));
    }

    [Fact]
    public void HypervisorOperations_LeaveNothingStale()
    {
        var rig = new Rig();
        rig.Map(0x200000, 0x400000, M2);
        Assert.Equal(OutcomeKind.Translated, rig.Probe(AccessKind.Write, 0x200000).Kind);
        rig.Ok(h => h.Protect(new Gpa(0x201000), K4, EptPermissions.ReadAccess));
        Assert.Equal(OutcomeKind.EptViolation, rig.Probe(AccessKind.Write, 0x201000).Kind);
        Assert.Equal(OutcomeKind.Translated, rig.Probe(AccessKind.Write, 0x200000).Kind);
        rig.Ok(h => h.Unmap(new Gpa(0x200000), K4));
        Assert.Equal(OutcomeKind.EptViolation, rig.Probe(AccessKind.Read, 0x200000).Kind);
    }

    [Fact]
    public void SingleContextInvept_OnlyTheCurrentRoot()
    {
        var rig = new Rig();
        rig.Map(0x1000, 0x5000, K4);
        ulong ownEptp = rig.Hypervisor.Eptp;
        Assert.Equal(OutcomeKind.Translated, rig.Probe(AccessKind.Read, 0x1000).Kind);
        rig.Ok(h => h.Edit(new Gpa(0x1000), EptLevel.Pte, 0, 7, null));

        // Switch to another root, invalidate that context only, and come back: the old mapping is still cached.
        rig.Session.SetEptp(0x7000 | 0x1E);
        rig.Session.Invept(InveptType.SingleContext);
        rig.Session.SetEptp(ownEptp);
        Assert.Equal(OutcomeKind.Translated, rig.Probe(AccessKind.Read, 0x1000).Kind);

        rig.Session.SetEptp(0x7000 | 0x1E);
        rig.Session.Invept(InveptType.Global);
        rig.Session.SetEptp(ownEptp);
        Assert.Equal(OutcomeKind.EptViolation, rig.Probe(AccessKind.Read, 0x1000).Kind);
    }

    [Fact]
    public void WriteToCachedCleanPage_WalksAgainAndSetsDirty()
    {
        var rig = new Rig(eptp: new EptpRequest { AccessedDirty = true });
        rig.Map(0x1000, 0x5000, K4);
        Assert.Equal(4, rig.Probe(AccessKind.Read, 0x1000).Writes.Count);
        Observation cachedRead = rig.Probe(AccessKind.Read, 0x1008);
        Assert.Empty(cachedRead.Walk);
        Observation write = rig.Probe(AccessKind.Write, 0x1010);
        Assert.Equal(4, write.Walk.Count);
        MemoryWrite dirty = Assert.Single(write.Writes);
        Assert.Equal(0x300UL, dirty.Value & 0x300);
        Assert.Empty(rig.Probe(AccessKind.Write, 0x1018).Walk);
    }

    [Fact]
    public void CombinedMapping_ServesLinearAccessesUntilInvept()
    {
        var rig = new Rig();
        rig.Map(0, 0x4000_0000, M2);
        rig.GuestPaging(new GuestPaging { Enabled = true, Cr3 = new Gpa(0x1000) }, 0x2000, 0x10000);
        rig.Ok(h => h.GMap(new Gva(0x8000), new Gpa(0x9000), K4, true, true, true));
        Observation first = rig.ProbeLinear(AccessKind.Write, 0x8010);
        Assert.Equal(0x4000_9010UL, first.Hpa.Value);
        Observation second = rig.ProbeLinear(AccessKind.Write, 0x8020);
        Assert.Empty(second.Walk);
        Assert.Equal(0x4000_9020UL, second.Hpa.Value);
        // A CPL 3 write is checked against the cached guest rights too, and still allowed.
        Assert.Empty(rig.ProbeLinear(AccessKind.Read, 0x8020, cpl: 3).Walk);

        rig.Ok(h => h.GEdit(new Gva(0x8000), EptLevel.Pte, 0, 1));
        Assert.Equal(OutcomeKind.Translated, rig.ProbeLinear(AccessKind.Read, 0x8000).Kind);
        rig.Ok(h => h.Invept(InveptType.SingleContext));
        Assert.Equal(OutcomeKind.GuestPageFault, rig.ProbeLinear(AccessKind.Read, 0x8000).Kind);
    }

    [Fact]
    public void TlbHitAndWalk_AllocateNothing()
    {
        var rig = new Rig(eptp: new EptpRequest { AccessedDirty = true });
        rig.Map(0, 0x4000_0000, M2);
        rig.GuestPaging(new GuestPaging { Enabled = true, Cr3 = new Gpa(0x1000) }, 0x2000, 0x10000);
        rig.Ok(h => h.GMap(new Gva(0x8000), new Gpa(0x9000), K4, true, true, true));
        var cpu = rig.Session.Cpu;
        Access gpa = Access.Physical(AccessKind.Write, new Gpa(0x3000));
        Access gva = Access.ThroughPaging(AccessKind.Write, new Gva(0x8000), 0);
        // Warm up: JIT, first-touch pages and A/D writes.
        cpu.Access(gpa);
        cpu.Access(gva);

        long before = GC.GetAllocatedBytesForCurrentThread();
        int hits = 0;
        for (int i = 0; i < 1000; i++)
        {
            hits += cpu.Access(gpa).FromCache ? 1 : 0;
            hits += cpu.Access(gva).FromCache ? 1 : 0;
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(2000, hits);

        cpu.CachingEnabled = false;
        before = GC.GetAllocatedBytesForCurrentThread();
        int walked = 0;
        for (int i = 0; i < 1000; i++)
        {
            walked += cpu.Access(gpa).WalkCount;
            walked += cpu.Access(gva).WalkCount;
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);

        // The hypervisor's own walk (gpa → hpa) allocates nothing either.
        ulong sum = 0;
        before = GC.GetAllocatedBytesForCurrentThread();
        for (ulong i = 0; i < 1024; i++)
        {
            sum += rig.Hypervisor.Ept.TryTranslate(new Gpa(i << 12), out Hpa hpa) ? hpa.Value : 0;
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        // Pages 0..511 are the 2 MiB mapping; 512..1023 are unmapped.
        Assert.Equal(512UL * 0x4000_0000 + (511UL * 512 / 2 << 12), sum);
        // gpa: 3 EPT entries (2 MiB page); gva: 4 guest entries after 3 EPT entries each, then 3 for the final GPA.
        Assert.Equal(1000 * (3 + (4 * (3 + 1)) + 3), walked);
    }
}

using EptFuzz.Contract;
using EptFuzz.Impl.Ept;
using static EptFuzz.Impl.Tests.Rig;

namespace EptFuzz.Impl.Tests;

/// <summary>Split, merge, partial operations on huge pages, and neighbours that must not disturb each other.</summary>
public sealed class ReshapeTests
{
    [Theory]
    [InlineData(2097152UL)]
    [InlineData(1073741824UL)]
    public void SplitThenMerge_RestoresTheSameEntry(ulong size)
    {
        var rig = new Rig();
        ulong gpa = 4 * G1, hpa = 7 * G1;
        rig.Map(gpa, hpa, size, EptPermissions.ReadAccess | EptPermissions.ExecuteAccess, MemoryType.WT, ignorePat: true);
        Assert.True(rig.Hypervisor.Ept.TryFindLeaf(new Gpa(gpa), out EptLeaf before));
        int tables = rig.Hypervisor.Ept.Pool.InUse;

        rig.Ok(h => h.Split(new Gpa(gpa + size / 2 + 5)));
        Assert.Equal(tables + 1, rig.Hypervisor.Ept.Pool.InUse);
        ulong small = size / 512;
        for (ulong i = 0; i < 512; i += 37)
        {
            Assert.True(rig.Hypervisor.Ept.TryFindLeaf(new Gpa(gpa + i * small), out EptLeaf part));
            Assert.Equal(before.Level - 1, part.Level);
            Assert.Equal(hpa + i * small, part.Translate(new Gpa(gpa + i * small)).Value);
            Assert.Equal(before.Value & 0xFFF & ~EptBits.LargePage, part.Value & 0xFFF & ~EptBits.LargePage);
        }

        Assert.Equal(EffectKind.Invept, rig.LastEffects[^1].Kind);
        rig.Ok(h => h.Merge(new Gpa(gpa), size));
        Assert.True(rig.Hypervisor.Ept.TryFindLeaf(new Gpa(gpa), out EptLeaf after));
        Assert.Equal(before, after);
        Assert.Equal(tables, rig.Hypervisor.Ept.Pool.InUse);
    }

    [Fact]
    public void PageEffects_KeepTheirWordsUntilTheNextDrain_AndRolledBackSplitsJournalNothing()
    {
        // Without 2 MiB pages a 1 GiB page splits straight into 4 KiB pages: 513 new tables.
        var rig = new Rig(CpuCapabilities.Default with { Page2M = false });
        rig.Map(2 * G1, 5 * G1, G1);
        var hypervisor = rig.Hypervisor;
        Assert.Equal(ApiResult.Ok, hypervisor.Protect(new Gpa(2 * G1), K4, EptPermissions.ReadAccess));
        var drained = new List<HypervisorEffect>();
        hypervisor.DrainEffects(drained);
        List<HypervisorEffect> pages = drained.Where(e => e.Kind == EffectKind.Page).ToList();
        Assert.Equal(513, pages.Count);
        ulong[][] copies = pages.Select(e => e.Words!.ToArray()).ToArray();

        // More tables composed before the next drain must not reuse the arrays handed out.
        Assert.Equal(ApiResult.Ok, hypervisor.Map(new Gpa(7 * G1), new Hpa(9 * G1), G1, Rwx, MemoryType.WB, false));
        Assert.Equal(ApiResult.Ok, hypervisor.Protect(new Gpa(7 * G1), K4, EptPermissions.ReadAccess));
        for (int i = 0; i < pages.Count; i++)
        {
            Assert.Equal(copies[i], pages[i].Words);
        }

        // A split the pool cannot finish rolls back: no effect, and the memory is as before.
        var small = new Rig(CpuCapabilities.Default with { Page2M = false }, poolCapacity: 40);
        small.Map(2 * G1, 5 * G1, G1);
        Assert.Equal(ApiResult.ResourceLimit, small.Do(h => h.Protect(new Gpa(2 * G1), K4, EptPermissions.ReadAccess)));
        Assert.Empty(small.LastEffects);
        Assert.True(small.Hypervisor.Ept.TryFindLeaf(new Gpa(2 * G1 + 0x1234), out EptLeaf leaf));
        Assert.Equal(EptLevel.Pdpte, leaf.Level);

        // The rolled-back tables' arrays serve later ones: a partial unmap splits again, and every
        // 4 KiB page but the unmapped one still translates where it did.
        var roomy = new Rig(CpuCapabilities.Default with { Page2M = false });
        roomy.Map(2 * G1, 5 * G1, G1);
        roomy.Ok(h => h.Unmap(new Gpa(2 * G1 + 0x3000), K4));
        for (ulong offset = 0; offset < G1; offset += 0x3FF000)
        {
            bool mapped = roomy.Hypervisor.Ept.TryFindLeaf(new Gpa(2 * G1 + offset), out EptLeaf part);
            Assert.Equal(offset != 0x3000, mapped);
            if (mapped)
            {
                Assert.Equal(5 * G1 + offset, part.Translate(new Gpa(2 * G1 + offset)).Value);
            }
        }
    }

    [Fact]
    public void Merge_RefusesNonContiguousOrMixedPages()
    {
        var rig = new Rig();
        rig.Map(0x200000, 0x800000, M2);
        rig.Ok(h => h.Split(new Gpa(0x200000)));
        rig.Ok(h => h.Protect(new Gpa(0x3FF000), K4, EptPermissions.ReadAccess));
        Assert.Equal(ApiResult.NotMergeable, rig.Do(h => h.Merge(new Gpa(0x200000), M2)));
        rig.Ok(h => h.Protect(new Gpa(0x3FF000), K4, Rwx));
        rig.Ok(h => h.Unmap(new Gpa(0x300000), K4));
        Assert.Equal(ApiResult.NotMergeable, rig.Do(h => h.Merge(new Gpa(0x200000), M2)));
        rig.Map(0x300000, 0x900000 + K4, K4);
        Assert.Equal(ApiResult.NotMergeable, rig.Do(h => h.Merge(new Gpa(0x200000), M2)));
        rig.Ok(h => h.Unmap(new Gpa(0x300000), K4));
        rig.Map(0x300000, 0x900000, K4);
        rig.Ok(h => h.Merge(new Gpa(0x200000), M2));
        Assert.Equal(ApiResult.NotMergeable, rig.Do(h => h.Merge(new Gpa(0x200000), M2)));
        Assert.Equal(ApiResult.Unaligned, rig.Do(h => h.Merge(new Gpa(0x201000), M2)));
        Assert.Equal(ApiResult.Unsupported, rig.Do(h => h.Merge(new Gpa(0x200000), K4)));
    }

    [Fact]
    public void PartialUnmapOfHugePage_KeepsTheRestWithItsAttributes()
    {
        var rig = new Rig();
        rig.Map(G1, 3 * G1, G1, EptPermissions.ReadAccess, MemoryType.UC, ignorePat: true);
        rig.Ok(h => h.Unmap(new Gpa(G1 + 5 * M2 + 3 * K4), K4));
        Assert.False(rig.Hypervisor.Ept.TryTranslate(new Gpa(G1 + 5 * M2 + 3 * K4), out _));
        foreach (ulong offset in new[] { 0UL, 5 * M2, 5 * M2 + 2 * K4, 5 * M2 + 4 * K4, G1 - K4 })
        {
            Assert.True(rig.Hypervisor.Ept.TryFindLeaf(new Gpa(G1 + offset), out EptLeaf leaf));
            Assert.Equal(3 * G1 + offset, leaf.Translate(new Gpa(G1 + offset)).Value);
            Assert.Equal(EptPermissions.ReadAccess, leaf.Permissions);
            Assert.Equal(MemoryType.UC, leaf.MemoryType);
            Assert.True(leaf.IgnorePat);
        }

        // The untouched 2 MiB parts stay 2 MiB pages; only the touched one became 4 KiB pages.
        Assert.True(rig.Hypervisor.Ept.TryFindLeaf(new Gpa(G1), out EptLeaf big));
        Assert.Equal(EptLevel.Pde, big.Level);
        Assert.True(rig.Hypervisor.Ept.TryFindLeaf(new Gpa(G1 + 5 * M2), out EptLeaf small));
        Assert.Equal(EptLevel.Pte, small.Level);
    }

    [Fact]
    public void PartialRetypeWithout2M_Splits1GInto4KTables()
    {
        var rig = new Rig(CpuCapabilities.Default with { Page2M = false });
        rig.Map(0, G1, G1);
        Assert.Equal(ApiResult.Unsupported, rig.Do(h => h.Split(new Gpa(0))));
        rig.Ok(h => h.Retype(new Gpa(0xA0000), 0x60000, MemoryType.UC, false));
        // 1 PD + 512 page tables.
        Assert.Equal(1 + 1 + 1 + 512, rig.Hypervisor.Ept.Pool.InUse);
        Observation vga = rig.Probe(AccessKind.Read, 0xB8000);
        Assert.Equal(OutcomeKind.Translated, vga.Kind);
        Assert.Equal(MemoryType.UC, vga.MemoryType);
        Assert.Equal(MemoryType.WB, rig.Probe(AccessKind.Read, 0x100000).MemoryType);
    }

    [Fact]
    public void RangeAcrossTablesAndPageSizes_ChangesExactlyTheRange_OrNothing()
    {
        // A 2 MiB page cut at the start, 4 KiB pages on both sides of a 1 GiB boundary, 2 MiB pages,
        // a 1 GiB page cut at the end: the range leaves tables at every level below the PML4, and
        // a hole anywhere undoes the whole operation.
        var rig = new Rig();
        rig.Map(0x3FC0_0000, 0x1_3FC0_0000, M2);
        for (ulong gpa = 0x3FE0_0000; gpa < 0x4000_3000; gpa += K4)
        {
            rig.Map(gpa, gpa + 0x1_0000_0000, K4);
        }

        rig.Map(G1 * 2, G1 * 7, G1);

        const ulong start = 0x3FE0_0000 - K4;
        const ulong end = G1 * 2 + M2 + K4;
        Assert.Equal(ApiResult.NotExist, rig.Do(h => h.Protect(new Gpa(start), end - start, EptPermissions.ReadAccess)));
        Assert.Equal(Rwx, Leaf(rig, start).Permissions);
        Assert.Equal(EptLevel.Pde, Leaf(rig, start).Level);
        Assert.Equal(EptLevel.Pdpte, Leaf(rig, G1 * 2).Level);

        // Fill the hole between 0x4000_3000 and 2 GiB with 2 MiB pages and 4 KiB pages.
        for (ulong gpa = 0x4000_3000; gpa < 0x4020_0000; gpa += K4)
        {
            rig.Map(gpa, gpa + 0x5_0000_0000, K4);
        }

        for (ulong gpa = 0x4020_0000; gpa < G1 * 2; gpa += M2)
        {
            rig.Map(gpa, gpa + 0x6_0000_0000, M2);
        }

        rig.Ok(h => h.Protect(new Gpa(start), end - start, EptPermissions.ReadAccess));
        foreach (ulong gpa in new ulong[] { start, 0x3FE0_0000, 0x3FFF_F000, 0x4000_0000, 0x4000_2000, 0x4020_0000, G1 * 2 - K4, G1 * 2, G1 * 2 + M2 })
        {
            Assert.Equal(EptPermissions.ReadAccess, Leaf(rig, gpa).Permissions);
        }

        foreach (ulong gpa in new ulong[] { start - K4, end, G1 * 3 - K4 })
        {
            Assert.Equal(Rwx, Leaf(rig, gpa).Permissions);
        }

        // The 1 GiB page was cut at its start only: 2 MiB pages, and 4 KiB pages in the last one touched.
        Assert.Equal(EptLevel.Pde, Leaf(rig, G1 * 2).Level);
        Assert.Equal(EptLevel.Pte, Leaf(rig, G1 * 2 + M2).Level);
        Assert.Equal(EptLevel.Pde, Leaf(rig, G1 * 2 + 2 * M2).Level);
        Assert.Equal(G1 * 7 + M2 + K4, Leaf(rig, end).Translate(new Gpa(end)).Value);
    }

    private static EptLeaf Leaf(Rig rig, ulong gpa)
    {
        Assert.True(rig.Hypervisor.Ept.TryFindLeaf(new Gpa(gpa), out EptLeaf leaf), $"nothing mapped at {gpa:x}");
        return leaf;
    }

    [Fact]
    public void AddressesDifferingInOneLevelIndex_DoNotDisturbEachOther()
    {
        var rig = new Rig(CpuCapabilities.Default with { Walk5 = true, MaxPhyAddr = 52 }, new EptpRequest { WalkLength = 5 });
        const ulong basis = 0x0001_0203_0405_6000UL & ((1UL << 52) - 1) & ~0xFFFUL;
        var mapped = new List<(ulong Gpa, ulong Hpa)>();
        for (int shift = 12; shift < 57; shift += 9)
        {
            for (ulong delta = 1; delta < 512; delta <<= 3)
            {
                ulong gpa = basis ^ (delta << shift);
                if (gpa >= 1UL << 52)
                {
                    continue;
                }

                ulong hpa = (ulong)(mapped.Count + 1) << 12;
                rig.Map(gpa, hpa, K4);
                mapped.Add((gpa, hpa));
                foreach ((ulong g, ulong h) in mapped)
                {
                    Observation read = rig.Probe(AccessKind.Read, g | 0x18);
                    Assert.Equal(OutcomeKind.Translated, read.Kind);
                    Assert.Equal(h | 0x18, read.Hpa.Value);
                }
            }
        }

        foreach ((ulong gpa, _) in mapped)
        {
            rig.Ok(h => h.Unmap(new Gpa(gpa), K4));
        }

        Assert.Equal(2, rig.Hypervisor.Ept.Pool.InUse);
    }
}

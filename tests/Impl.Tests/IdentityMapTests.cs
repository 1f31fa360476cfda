using EptFuzz.Contract;
using EptFuzz.Impl.Ept;
using static EptFuzz.Impl.Tests.Rig;

namespace EptFuzz.Impl.Tests;

/// <summary>Identity and offset maps from a PC-like memory map, with the table count checked against an independent lower bound.</summary>
public sealed class IdentityMapTests
{
    private const ulong GiB = 1UL << 30;

    /// <summary>A PC-like map: low RAM, legacy VGA/ROM UC, RAM below 3 GiB, MMIO holes UC, the rest remapped above 4 GiB.</summary>
    private static List<(ulong Start, ulong End, MemoryType Type)> PcMap(ulong machine)
    {
        ulong below = Math.Min(machine, 3 * GiB);
        var map = new List<(ulong, ulong, MemoryType)>
        {
            (0, 0xA0000, MemoryType.WB),
            (0xA0000, 0x100000, MemoryType.UC),
            (0x100000, below, MemoryType.WB),
            (0xE000_0000, 0xF000_0000, MemoryType.UC), // PCIe configuration space
            (0xFEC0_0000, 0xFEC0_1000, MemoryType.UC), // I/O APIC
            (0xFEE0_0000, 0xFEE0_1000, MemoryType.UC), // local APIC
        };
        if (machine > below)
        {
            map.Add((4 * GiB, 4 * GiB + (machine - below), MemoryType.WB));
        }

        return map;
    }

    [Theory]
    [InlineData(4UL << 30, true, true)]
    [InlineData(32UL << 30, true, true)]
    [InlineData(1UL << 40, true, true)]
    [InlineData(32UL << 30, false, true)]
    [InlineData(4UL << 30, false, false)]
    public void PcMap_UsesTheMinimumNumberOfTables(ulong machine, bool page1G, bool page2M)
    {
        var rig = new Rig(CpuCapabilities.Default with { Page1G = page1G, Page2M = page2M });
        List<(ulong Start, ulong End, MemoryType Type)> map = PcMap(machine);
        foreach ((ulong start, ulong end, MemoryType type) in map)
        {
            rig.Ok(h => h.AddMemoryRange(new Gpa(start), new Gpa(end), type));
        }

        int before = rig.Hypervisor.Ept.Pool.InUse;
        rig.Ok(h => h.IdentityMap(0, new Gpa(0)));
        Assert.Equal(LowerBound(map, page1G, page2M), rig.Hypervisor.Ept.Pool.InUse - before + 1);

        Observation vga = rig.Probe(AccessKind.Read, 0xB8000);
        Assert.Equal(0xB8000UL, vga.Hpa.Value);
        Assert.Equal(MemoryType.UC, vga.MemoryType);
        Assert.Equal(MemoryType.WB, rig.Probe(AccessKind.Read, 0x10_0000).MemoryType);
        Assert.Equal(MemoryType.UC, rig.Probe(AccessKind.Write, 0xFEE0_0300).MemoryType);
        Assert.Equal(OutcomeKind.EptViolation, rig.Probe(AccessKind.Read, 0xD000_0000).Kind);
        ulong top = map[^1].End - 8;
        Observation last = rig.Probe(AccessKind.Fetch, top);
        Assert.Equal(top, last.Hpa.Value);
        Assert.Equal(Rwx, last.Permissions);
        Assert.Equal(page1G && machine > 3 * GiB ? PageSize.Size1G : page2M ? PageSize.Size2M : PageSize.Size4K, last.PageSize);
    }

    /// <summary>
    /// Tables any mapping of this map needs, counted slot by slot: the root; a PDPT per 512 GiB
    /// slot with memory; a page directory per 1 GiB slot with memory that one 1 GiB page cannot
    /// map (not all memory of one type, or no 1 GiB pages); a page table per 2 MiB slot likewise.
    /// </summary>
    private static int LowerBound(List<(ulong Start, ulong End, MemoryType Type)> map, bool page1G, bool page2M)
    {
        int tables = 1;
        ulong end = map.Max(r => r.End);
        for (ulong pdpt = 0; pdpt < end; pdpt += 512 * GiB)
        {
            if (!Intersects(map, pdpt, pdpt + 512 * GiB))
            {
                continue;
            }

            tables++;
            for (ulong pd = pdpt; pd < Math.Min(end, pdpt + 512 * GiB); pd += GiB)
            {
                if (!Intersects(map, pd, pd + GiB) || (page1G && Uniform(map, pd, pd + GiB)))
                {
                    continue;
                }

                tables++;
                for (ulong pt = pd; pt < pd + GiB; pt += M2)
                {
                    if (Intersects(map, pt, pt + M2) && !(page2M && Uniform(map, pt, pt + M2)))
                    {
                        tables++;
                    }
                }
            }
        }

        return tables;
    }

    private static bool Intersects(List<(ulong Start, ulong End, MemoryType Type)> map, ulong start, ulong end) =>
        map.Any(r => r.Start < end && start < r.End);

    /// <summary>[start, end) is entirely memory of one type.</summary>
    private static bool Uniform(List<(ulong Start, ulong End, MemoryType Type)> map, ulong start, ulong end)
    {
        ulong covered = start;
        MemoryType? type = null;
        foreach ((ulong s, ulong e, MemoryType t) in map.OrderBy(r => r.Start))
        {
            if (e <= covered || s >= end)
            {
                continue;
            }

            if (s > covered || (type is { } known && known != t))
            {
                return false;
            }

            type = t;
            covered = e;
        }

        return covered >= end;
    }

    [Fact]
    public void JosLayout_OffsetAboveOneMegabyte()
    {
        var rig = new Rig();
        rig.Ok(h => h.AddMemoryRange(new Gpa(0), new Gpa(0xA0000), MemoryType.WB));
        rig.Ok(h => h.AddMemoryRange(new Gpa(0xA0000), new Gpa(0x100000), MemoryType.UC));
        rig.Ok(h => h.AddMemoryRange(new Gpa(0x100000), new Gpa(0x4000_0000), MemoryType.WB));
        const ulong offset = 0x1000_0000;
        rig.Ok(h => h.IdentityMap(offset, new Gpa(0x100000)));
        Assert.Equal(0x9F008UL, rig.Probe(AccessKind.Read, 0x9F008).Hpa.Value);
        Assert.Equal(0xB8000UL, rig.Probe(AccessKind.Read, 0xB8000).Hpa.Value);
        Observation kernel = rig.Probe(AccessKind.Read, 0x10_0010);
        Assert.Equal(offset + 0x10_0010, kernel.Hpa.Value);
        Assert.Equal(PageSize.Size4K, kernel.PageSize);
        Observation high = rig.Probe(AccessKind.Read, 0x3FFF_FFF8);
        Assert.Equal(offset + 0x3FFF_FFF8, high.Hpa.Value);
        Assert.Equal(PageSize.Size2M, high.PageSize);
        // Identity-mapping again overlaps everything.
        Assert.Equal(ApiResult.Duplicated, rig.Do(h => h.IdentityMap(0, new Gpa(0))));
    }

    [Fact]
    public void MemoryRanges_Validated()
    {
        var rig = new Rig();
        rig.Ok(h => h.AddMemoryRange(new Gpa(0x1000), new Gpa(0x5000), MemoryType.WB));
        Assert.Equal(ApiResult.Duplicated, rig.Do(h => h.AddMemoryRange(new Gpa(0x4000), new Gpa(0x6000), MemoryType.WB)));
        Assert.Equal(ApiResult.Unaligned, rig.Do(h => h.AddMemoryRange(new Gpa(0x6000), new Gpa(0x6800), MemoryType.WB)));
        Assert.Equal(ApiResult.OutOfRange, rig.Do(h => h.AddMemoryRange(new Gpa(0), new Gpa(1UL << 49), MemoryType.WB)));
        Assert.Equal(ApiResult.InvalidPermission, rig.Do(h => h.AddMemoryRange(new Gpa(0x8000), new Gpa(0x9000), (MemoryType)3)));
        Assert.Equal(ApiResult.Unaligned, rig.Do(h => h.IdentityMap(0x800, new Gpa(0))));
    }

    [Fact]
    public void OversizedFourKilobyteMap_ResourceLimitBeforeBuilding()
    {
        var rig = new Rig(poolCapacity: 64);
        rig.Ok(h => h.AddMemoryRange(new Gpa(0), new Gpa(1UL << 36), MemoryType.WB));
        // A 4 KiB offset forbids every large page: 2^24 pages would need 32768 page tables.
        Assert.Equal(ApiResult.ResourceLimit, rig.Do(h => h.IdentityMap(0x1000, new Gpa(0))));
        Assert.Equal(1, rig.Hypervisor.Ept.Pool.InUse);
        Assert.Empty(rig.LastEffects);
    }
}

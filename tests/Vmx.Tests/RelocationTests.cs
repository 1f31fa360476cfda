using EptFuzz.Contract;
using EptFuzz.Targets.Vmx.Image;
using EptFuzz.Targets.Vmx.Session;

namespace EptFuzz.Vmx.Tests;

public sealed class RelocationTests
{
    [Fact]
    public void Relocation_IsConsistent()
    {
        var r = new Relocation();
        Assert.True(r.AddPlain(0x1000));
        Assert.True(r.AddPlain(0xF_0000_0000));
        Assert.True(r.AddLeafTarget(0x4020_0000, PageSize.Size4K));
        Assert.True(r.AddLeafTarget(0x1000, PageSize.Size4K)); // a written page: the same VM page, no tag
        Assert.True(r.AddLeafTarget(0x4040_0000, PageSize.Size2M));
        Assert.True(r.AddLeafTarget(0x4040_0000, PageSize.Size2M));
        Assert.True(r.AddLeafTarget(0x8000_0000, PageSize.Size2M));

        var pages = r.AllPages().ToList();
        // Every VM page backs exactly one case page, lies in the pool and never on the kernel.
        Assert.Equal(pages.Count, pages.Select(p => p.Vm).Distinct().Count());
        Assert.All(pages, p => Assert.InRange(p.Vm, KernelLayout.PoolStart, KernelLayout.RamBytes - 0x1000));
        Assert.All(pages, p => Assert.Equal(0UL, p.Vm & 0xFFF));
        Assert.Equal(2 + 1 + 512 * 2, pages.Count);
        Assert.All(r.Blocks2M.Values, b => Assert.Equal(0UL, b & 0x1FFFFF));

        Assert.True(r.TryMapLeaf(0x1000, PageSize.Size4K, out ulong plainVm));
        Assert.Equal(r.PlainPages[0x1000], plainVm);
        Assert.True(r.TryMapLeaf(0x4040_0000, PageSize.Size2M, out ulong block));
        Assert.False(r.TryMapLeaf(0x4060_0000, PageSize.Size2M, out _));
        Assert.False(r.TryMapLeaf(0, PageSize.Size1G, out _));

        // Planted ids map back to the case page and leaf size of every tagged page.
        foreach (var run in r.Runs)
        {
            for (int i = 0; i < run.Pages; i++)
            {
                Assert.True(r.TryResolveId(run.FirstId + (uint)i, out ulong casePage, out var size));
                Assert.Equal(run.CaseStart + ((ulong)i << 12), casePage);
                Assert.Equal(run.Size, size);
            }
        }

        Assert.False(r.TryResolveId((uint)r.TaggedPageCount, out _, out _));
        Assert.Equal(block, r.Runs.Single(x => x.CaseStart == 0x4040_0000).VmStart);
    }

    [Fact]
    public void Relocation_CaseWrittenPageInsideA2MTarget_IsThatPageOfTheBlock()
    {
        var r = new Relocation();
        Assert.True(r.AddLeafTarget(0x0, PageSize.Size2M));
        Assert.True(r.AddPlain(0x10_0000)); // e.g. guest page tables inside the 2 MiB leaf's range
        Assert.True(r.AddPlain(0x40_0000));
        ulong block = r.Blocks2M[0];
        Assert.Equal(block + 0x10_0000, r.PlainPages[0x10_0000]);
        Assert.True(r.IsPlainInBlock(block + 0x10_0000));
        Assert.False(r.IsPlainInBlock(r.PlainPages[0x40_0000])); // outside the block: a pool page
        Assert.InRange(r.PlainPages[0x40_0000], KernelLayout.PoolStart, block - 0x1000);
        var pages = r.AllPages().ToList();
        Assert.Equal(pages.Count, pages.Select(p => p.Vm).Distinct().Count());
        Assert.Equal(512 + 1, pages.Count);
    }

    [Fact]
    public void Relocation_RunsOutOfRamInsteadOfOverlapping()
    {
        var r = new Relocation(KernelLayout.PoolStart, KernelLayout.PoolStart + 0x400000);
        Assert.True(r.AddLeafTarget(0, PageSize.Size2M));
        Assert.True(r.AddPlain(0x20_0000_0000)); // outside the block: takes the first pool page
        Assert.False(r.AddLeafTarget(0x200000, PageSize.Size2M)); // the remaining space is not a free aligned block
        int added = 0;
        while (r.AddPlain(0x10_0000_0000 + ((ulong)added << 12)))
        {
            added++;
        }

        Assert.Equal(511, added);
        var pages = r.AllPages().Select(p => p.Vm).ToList();
        Assert.Equal(pages.Count, pages.Distinct().Count());
    }
}

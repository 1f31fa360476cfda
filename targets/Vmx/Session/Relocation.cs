using EptFuzz.Contract;
using EptFuzz.Targets.Vmx.Image;

namespace EptFuzz.Targets.Vmx.Session;

/// <summary>A run of tagged VM pages that back consecutive case pages reached through leaves of one size.</summary>
public readonly record struct TaggedRun(ulong VmStart, ulong CaseStart, int Pages, PageSize Size, uint FirstId)
{
    public int SizeCode => (int)Size;
}

/// <summary>
/// Where each case host-physical page lives in the VM. Three kinds of VM page:
/// <list type="bullet">
/// <item>plain pages: pages the case writes (EPT tables, guest tables, poked data) and EPT roots; zeroed, then written exactly as the case writes them;</item>
/// <item>tagged 4 KiB pages: targets of 4 KiB EPT leaves that the case never writes;</item>
/// <item>tagged 2 MiB blocks: targets of 2 MiB leaves, a 2 MiB-aligned VM block per aligned case block;</item>
/// <item>the 1 GiB block at VM 1 GiB that every 1 GiB leaf points at: only the pages probes touch are
/// filled (tagged, or the case's own page when it writes it), each at its offset.</item>
/// </list>
/// Tagged pages hold <see cref="Tag"/> values, so a read reports which case address (and which leaf
/// size) it reached. A case page reached both as a 4 KiB target and inside a 2 MiB block gets two VM
/// copies: its data is never an observation, only where the access landed.
/// </summary>
public sealed class Relocation
{
    private readonly Dictionary<ulong, ulong> plain = [];
    private readonly Dictionary<ulong, ulong> tagged4K = [];
    private readonly Dictionary<ulong, ulong> blocks2M = [];
    private readonly List<TaggedRun> runs = [];
    private readonly HashSet<ulong> gigabyteLeaves = [];
    /// <summary>VM pages of 2 MiB blocks that hold a case-written page instead of tags.</summary>
    private readonly HashSet<ulong> plainInBlocks = [];
    private readonly Dictionary<ulong, int> plainSizeCodes = [];
    /// <summary>Untouched leaf targets: case base -> the shared stand-in of their size.</summary>
    private readonly Dictionary<(ulong Base, PageSize Size), ulong> standIns = [];
    private ulong standIn4K;
    private ulong standIn2M;
    /// <summary>Offset inside the 1 GiB block -> the case page placed there.</summary>
    private readonly Dictionary<ulong, ulong> gigabyteOffsets = [];
    private ulong gigabyteEnd;
    private ulong nextPage;
    private ulong nextBlockTop;

    public Relocation(ulong poolStart = KernelLayout.PoolStart, ulong poolEnd = KernelLayout.RamBytes)
    {
        PoolStart = poolStart;
        PoolEnd = poolEnd;
        nextPage = poolStart;
        nextBlockTop = poolEnd & ~0x1FFFFFUL;
    }

    public ulong PoolStart { get; }
    public ulong PoolEnd { get; }
    public IReadOnlyDictionary<ulong, ulong> PlainPages => plain;
    public IReadOnlyDictionary<ulong, ulong> Tagged4KPages => tagged4K;
    public IReadOnlyDictionary<ulong, ulong> Blocks2M => blocks2M;
    public IReadOnlyList<TaggedRun> Runs => runs;
    public int TaggedPageCount => runs.Sum(r => r.Pages);

    /// <summary>RAM the VM needs: the default, or past the 1 GiB block far enough for every page placed there (64 MiB steps).</summary>
    public ulong RamBytesNeeded => gigabyteEnd == 0
        ? KernelLayout.RamBytes
        : Math.Max(KernelLayout.RamBytes, (gigabyteEnd + (64UL << 20) - 1) & ~((64UL << 20) - 1));

    /// <summary>
    /// Places a case page that a probe reaches through a 1 GiB leaf: every 1 GiB leaf points at the
    /// VM's <see cref="KernelLayout.GigabyteBlock"/>, so the page must sit at its offset there. A page
    /// the case writes goes there as its plain page (call before <see cref="AddPlain"/> allocates
    /// it elsewhere); any other page is tagged with leaf size 1G. False when another case page
    /// already holds that offset (two 1 GiB leaves touched at the same offset).
    /// </summary>
    public bool PlaceInGigabyteBlock(ulong casePage, bool plainPage)
    {
        ulong offset = casePage & (KernelLayout.GigabyteBlock - 1);
        if (gigabyteOffsets.TryGetValue(offset, out ulong holder))
        {
            return holder == casePage;
        }

        if (plainPage && plain.ContainsKey(casePage))
        {
            throw new InvalidOperationException("place pages in the 1 GiB block before allocating plain pages");
        }

        ulong vm = KernelLayout.GigabyteBlock + offset;
        gigabyteOffsets[offset] = casePage;
        gigabyteEnd = Math.Max(gigabyteEnd, vm + 0x1000);
        if (plainPage)
        {
            plain[casePage] = vm;
            plainSizeCodes[casePage] = (int)PageSize.Size1G;
        }
        else
        {
            runs.Add(new TaggedRun(vm, casePage, 1, PageSize.Size1G, NextId()));
        }

        return true;
    }

    /// <summary>Gives a case page a zeroed VM page. False when the VM is out of RAM.</summary>
    public bool AddPlain(ulong casePage)
    {
        if (plain.ContainsKey(casePage))
        {
            return true;
        }

        // Inside a 2 MiB leaf's target the hardware reads the block: the case's own page (guest
        // page tables, say) must be that page of the block, not a copy elsewhere.
        if (blocks2M.TryGetValue(casePage & ~0x1FFFFFUL, out ulong block))
        {
            ulong inBlock = block + (casePage & 0x1FFFFF);
            plain[casePage] = inBlock;
            plainInBlocks.Add(inBlock);
            plainSizeCodes[casePage] = (int)PageSize.Size2M;
            return true;
        }

        if (!TakePage(out ulong vm))
        {
            return false;
        }

        plain[casePage] = vm;
        plainSizeCodes[casePage] = (int)PageSize.Size4K;
        return true;
    }

    /// <summary>
    /// Plain pages start out tagged like data pages (then the case's writes land on top): a tag has
    /// bits 2:0 clear, so an entry the case never wrote reads as not present to EPT and guest walks
    /// alike, while a read there still proves where it landed. The tag's size code is the leaf size
    /// through which the page is reached in the VM (4K for pool pages, 2M inside a block, 1G in the
    /// 1 GiB block). Pages inside 2 MiB blocks are filled with their block.
    /// </summary>
    public IEnumerable<(ulong Vm, ulong Case, int SizeCode)> PlainFills() =>
        plain.Where(p => !plainInBlocks.Contains(p.Value)).Select(p => (p.Value, p.Key, plainSizeCodes[p.Key]));

    /// <summary>
    /// Case pages whose VM page is reached through a large leaf and also through a 4 KiB leaf: a tag
    /// read there cannot say which leaf size the access used.
    /// </summary>
    public IReadOnlySet<ulong> AmbiguousSizePages(IEnumerable<ulong> fourKilobyteTargets) =>
        fourKilobyteTargets.Where(p => plainSizeCodes.TryGetValue(p, out int code) && code != (int)PageSize.Size4K).ToHashSet();

    /// <summary>Backs the target of a leaf of <paramref name="size"/> at aligned case address <paramref name="caseBase"/>.</summary>
    public bool AddLeafTarget(ulong caseBase, PageSize size)
    {
        switch (size)
        {
            case PageSize.Size4K:
                if (plain.ContainsKey(caseBase) || tagged4K.ContainsKey(caseBase))
                {
                    return true;
                }

                if (!TakePage(out ulong vm))
                {
                    return false;
                }

                tagged4K[caseBase] = vm;
                runs.Add(new TaggedRun(vm, caseBase, 1, PageSize.Size4K, NextId()));
                return true;
            case PageSize.Size2M:
                if (blocks2M.ContainsKey(caseBase))
                {
                    return true;
                }

                ulong block = nextBlockTop - 0x200000;
                if (nextBlockTop < 0x200000 || block < nextPage)
                {
                    return false;
                }

                if (plain.Keys.Any(p => (p & ~0x1FFFFFUL) == caseBase))
                {
                    throw new InvalidOperationException("add 2 MiB blocks before the plain pages inside them");
                }

                nextBlockTop = block;
                blocks2M[caseBase] = block;
                runs.Add(new TaggedRun(block, caseBase, 512, PageSize.Size2M, NextId()));
                return true;
            case PageSize.Size1G:
                gigabyteLeaves.Add(caseBase);
                return true;
            default:
                return false;
        }
    }

    /// <summary>
    /// Points a leaf that no probe is expected to reach at a shared, zeroed stand-in of its size
    /// (one 4 KiB page, one 2 MiB block), so that unused leaves cost no RAM. A case page the case
    /// writes keeps its own page for 4 KiB leaves.
    /// </summary>
    public bool AddStandIn(ulong caseBase, PageSize size)
    {
        if (size == PageSize.Size4K && plain.ContainsKey(caseBase))
        {
            return true;
        }

        if (size == PageSize.Size4K && standIn4K == 0)
        {
            if (!TakePage(out standIn4K))
            {
                return false;
            }
        }
        else if (size == PageSize.Size2M && standIn2M == 0)
        {
            ulong block = nextBlockTop - 0x200000;
            if (nextBlockTop < 0x200000 || block < nextPage)
            {
                return false;
            }

            nextBlockTop = block;
            standIn2M = block;
        }
        else if (size is not (PageSize.Size4K or PageSize.Size2M))
        {
            return false;
        }

        standIns[(caseBase, size)] = size == PageSize.Size4K ? standIn4K : standIn2M;
        return true;
    }

    /// <summary>The stand-in pages (first VM page, page count) that must be zeroed.</summary>
    public IEnumerable<(ulong Vm, int Pages)> StandIns()
    {
        if (standIn4K != 0)
        {
            yield return (standIn4K, 1);
        }

        if (standIn2M != 0)
        {
            yield return (standIn2M, 512);
        }
    }

    /// <summary>The VM page of a table (plain) page.</summary>
    public bool TryMapPlain(ulong casePage, out ulong vmPage) => plain.TryGetValue(casePage, out vmPage);

    /// <summary>The VM address a leaf of <paramref name="size"/> at aligned case base should point to.</summary>
    public bool TryMapLeaf(ulong caseBase, PageSize size, out ulong vmBase) => size switch
    {
        PageSize.Size4K => plain.TryGetValue(caseBase, out vmBase) || tagged4K.TryGetValue(caseBase, out vmBase) || standIns.TryGetValue((caseBase, size), out vmBase),
        PageSize.Size2M => blocks2M.TryGetValue(caseBase, out vmBase) || standIns.TryGetValue((caseBase, size), out vmBase),
        PageSize.Size1G => gigabyteLeaves.Contains(caseBase) ? Succeed(KernelLayout.GigabyteBlock, out vmBase) : Fail(out vmBase),
        _ => Fail(out vmBase),
    };

    /// <summary>The case page and leaf size behind a planted fetch id.</summary>
    public bool TryResolveId(uint id, out ulong casePage, out PageSize size)
    {
        foreach (var run in runs)
        {
            if (id >= run.FirstId && id < run.FirstId + (uint)run.Pages)
            {
                casePage = run.CaseStart + ((ulong)(id - run.FirstId) << 12);
                size = run.Size;
                return true;
            }
        }

        casePage = 0;
        size = default;
        return false;
    }

    /// <summary>True when this VM page of a tagged run holds a case-written page (no tags, no planted code).</summary>
    public bool IsPlainInBlock(ulong vmPage) => plainInBlocks.Contains(vmPage);

    /// <summary>Every VM page this relocation uses, with the case page it backs.</summary>
    public IEnumerable<(ulong Vm, ulong Case)> AllPages()
    {
        foreach (var (c, v) in plain)
        {
            yield return (v, c);
        }

        foreach (var run in runs)
        {
            for (int i = 0; i < run.Pages; i++)
            {
                ulong vm = run.VmStart + ((ulong)i << 12);
                if (!plainInBlocks.Contains(vm))
                {
                    yield return (vm, run.CaseStart + ((ulong)i << 12));
                }
            }
        }
    }

    private uint NextId() => (uint)TaggedPageCount;

    private bool TakePage(out ulong vm)
    {
        vm = nextPage;
        if (nextPage + 0x1000 > nextBlockTop)
        {
            return false;
        }

        nextPage += 0x1000;
        return true;
    }

    private static bool Succeed(ulong result, out ulong value)
    {
        value = result;
        return true;
    }

    private static bool Fail(out ulong value)
    {
        value = 0;
        return false;
    }
}

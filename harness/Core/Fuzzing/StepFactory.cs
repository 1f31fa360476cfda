using EptFuzz.Contract;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// Makes single steps that fit a case so far: it remembers the processor, the walk length, what
/// was mapped and which guest-linear addresses were set up, and biases every address to where EPT
/// code breaks (table-index edges, huge-page boundaries, one-level-apart neighbours, the
/// MAXPHYADDR edge). Used by the generator for fresh cases and by the mutator to insert steps.
/// </summary>
internal sealed class StepFactory
{
    private const ulong K4 = 1UL << 12;
    private const ulong M2 = 1UL << 21;
    private const ulong G1 = 1UL << 30;
    private const ulong ProbeLimit = 1UL << 52;

    /// <summary>Table indices where off-by-one and sign errors live.</summary>
    private static readonly ulong[] EdgeIndices = [0, 1, 2, 255, 256, 510, 511];

    private static readonly ulong[] EptBitsToFlip =
    [
        0x1, 0x2, 0x4, // ReadAccess, WriteAccess, ExecuteAccess
        0x8, 0x10, 0x20, 0x38, // [5:3] memory type of a leaf, reserved on a non-leaf
        0x40, // IgnorePat (reserved on a non-leaf)
        0x80, // LargePage (reserved at PML4E/PML5E and in a PTE it is ignored)
        0x100, 0x200, // Accessed, Dirty
        0x400, // UserModeExecute
        0x800, // ignored
        1UL << 63, // SuppressVe
    ];

    /// <summary>Guest paging-entry bits a <c>gedit</c> sets or clears: P, R/W, U/S, PWT, PCD, A, D, PS (PAT in a PTE), G, the ignored 9-11, PAT of a large page, XD, a reserved bit.</summary>
    private static readonly ulong[] GuestBitsToFlip =
        [0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x100, 0x200, 0x400, 0x800, 0x1000, 1UL << 63, 1UL << 51];

    private readonly Prng rng;
    private readonly List<(ulong Gpa, ulong Hpa, ulong Size)> mapped = new(32);
    private readonly List<ulong> gvas = new(16);
    private readonly List<ulong> tablePages = new(8);

    public StepFactory(Prng rng, CpuCapabilities cpu)
    {
        this.rng = rng;
        Cpu = cpu;
        WalkLength = 4;
    }

    public CpuCapabilities Cpu { get; }

    public int WalkLength { get; set; }

    public bool MbecControl { get; set; }

    public bool GuestPaging { get; private set; }

    public bool AccessedDirty { get; set; }

    private ulong PhysLimit => 1UL << Cpu.MaxPhyAddr;

    /// <summary>The first guest-physical address the walk cannot translate.</summary>
    private ulong WalkLimit => Math.Min(ProbeLimit, 1UL << (12 + (9 * WalkLength)));

    /// <summary>Learns from a step already in the case (for the mutator, which starts mid-case).</summary>
    public void Learn(Step step)
    {
        switch (step)
        {
            case EptpStep { Raw: null } e:
                WalkLength = e.WalkLength ?? 4;
                AccessedDirty = e.AccessedDirty ?? false;
                break;
            case ControlsStep c:
                MbecControl = c.Mbec ?? false;
                break;
            case GuestStep g:
                GuestPaging = g.Paging;
                if (g.Cr3 is { } cr3)
                {
                    tablePages.Add(cr3.Value);
                }

                break;
            case MapStep m:
                Remember(m.Gpa.Value, m.Hpa.Value, m.Size);
                break;
            case GMapStep gm:
                if (gvas.Count < 64)
                {
                    gvas.Add(gm.Gva.Value);
                }

                break;
        }
    }

    private void Remember(ulong gpa, ulong hpa, ulong size)
    {
        if (mapped.Count < 64)
        {
            mapped.Add((gpa, hpa, size));
        }
    }

    // ---- addresses -------------------------------------------------------------------------

    /// <summary>An address built level by level from edge indices (or random ones), below <paramref name="limit"/>.</summary>
    private ulong IndexedAddress(ulong limit, int levels)
    {
        ulong a = 0;
        for (int level = 1; level <= levels; level++)
        {
            ulong index = rng.Chance(65) ? rng.Pick<ulong>(EdgeIndices) : rng.Below(512UL);
            a |= index << (12 + (9 * (level - 1)));
        }

        // Upper levels mostly stay low, so that most addresses are in range and share tables.
        if (limit != 0 && a >= limit)
        {
            a = rng.Chance(80) ? a & ((limit - 1) >> rng.Below(8)) : a & (limit - 1);
        }

        return a;
    }

    /// <summary>A guest-physical address, aligned to <paramref name="align"/> unless the case asks for an unaligned one.</summary>
    public ulong Gpa(ulong align)
    {
        ulong limit = Math.Min(WalkLimit, PhysLimit);
        ulong a;
        switch (rng.Weighted([mapped.Count > 0 ? 55 : 0, 35, 6, 4]))
        {
            case 0:
                a = Near(rng.Pick<(ulong Gpa, ulong Hpa, ulong Size)>(mapped));
                break;
            case 1:
                a = IndexedAddress(limit, WalkLength);
                break;
            case 2:
                // The MAXPHYADDR edge: the last page below it, or the first one above it.
                a = rng.Coin() ? PhysLimit - Math.Max(align, K4) : PhysLimit;
                break;
            default:
                // The walk-length edge: 2^48 is out of reach of a 4-level walk.
                a = rng.Coin() ? (1UL << 48) - Math.Max(align, K4) : 1UL << 48;
                break;
        }

        a &= ProbeLimit - 1;
        return a & ~(Math.Max(align, K4) - 1);
    }

    /// <summary>Neighbours of a mapped page: itself, its last 4K page, the page past it, one level's index away.</summary>
    private ulong Near((ulong Gpa, ulong Hpa, ulong Size) page)
    {
        ulong g = page.Gpa;
        switch (rng.Below(7))
        {
            case 0:
            case 1:
                return g;
            case 2:
                return g + page.Size - K4;
            case 3:
                return g + page.Size;
            case 4:
                return g >= K4 ? g - K4 : g;
            case 5:
                // Exactly one level's index differs.
                int level = 1 + rng.Below(WalkLength);
                int shift = 12 + (9 * (level - 1));
                ulong index = rng.Pick<ulong>(EdgeIndices);
                return (g & ~(511UL << shift)) | (index << shift);
            default:
                return g + (rng.Below(Math.Max(page.Size / K4, 1)) * K4);
        }
    }

    private ulong Hpa(ulong gpa, ulong size)
    {
        ulong a;
        switch (rng.Weighted([30, 50, 10, 5, 5]))
        {
            case 0:
                a = gpa; // identity
                break;
            case 1:
                a = IndexedAddress(PhysLimit, 4);
                break;
            case 2:
                a = mapped.Count > 0 ? rng.Pick<(ulong Gpa, ulong Hpa, ulong Size)>(mapped).Hpa : gpa; // aliasing
                break;
            case 3:
                a = PhysLimit - size; // the last page below MAXPHYADDR (where the hypervisor keeps its tables)
                break;
            default:
                a = PhysLimit; // just above MAXPHYADDR
                break;
        }

        a &= ProbeLimit - 1;
        return rng.Chance(97) ? a & ~(size - 1) : a & ~(K4 - 1);
    }

    private ulong PageSizeBytes()
    {
        return rng.Weighted([55, 32, 13]) switch
        {
            0 => K4,
            1 => M2,
            _ => G1,
        };
    }

    /// <summary>Sizes for range operations: whole pages, several pages, a part of a huge page, or (rarely) one that is no multiple of 4K.</summary>
    private ulong RangeSize()
    {
        return rng.Weighted([40, 25, 10, 10, 5, 1]) switch
        {
            0 => K4,
            1 => M2,
            2 => G1,
            3 => K4 * (2 + rng.Below(8UL)),
            4 => rng.Chance(80) ? M2 * 2 : K4 * 513,
            _ => OddSize(),
        };
    }

    /// <summary>A size that is not a page size: several 4K pages, a 2M page and one 4K more, or no multiple of 4K at all.</summary>
    private ulong OddSize() => rng.Below(3) switch
    {
        0 => K4 * (2 + rng.Below(4UL)),
        1 => M2 + K4,
        _ => K4 + (8UL << rng.Below(8)),
    };

    private EptPermissions Permissions()
    {
        const EptPermissions R = EptPermissions.ReadAccess, W = EptPermissions.WriteAccess, X = EptPermissions.ExecuteAccess, U = EptPermissions.UserModeExecute;
        EptPermissions p = rng.Weighted([30, 10, 10, 10, 7, 5, 3, 3]) switch
        {
            0 => R | W | X,
            1 => R | W,
            2 => R,
            3 => R | X,
            4 => X, // execute-only: valid only with the capability
            5 => EptPermissions.None,
            6 => W, // write without read: a misconfiguration
            _ => W | X,
        };
        if (Cpu.Mbec && rng.Chance(MbecControl ? 45 : 10))
        {
            p = rng.Chance(20) ? p & ~X | U : p | U;
        }

        return p;
    }

    private MemoryType MemType()
    {
        return rng.Weighted([60, 12, 8, 6, 6, 4, 4]) switch
        {
            0 => MemoryType.WB,
            1 => MemoryType.UC,
            2 => MemoryType.WT,
            3 => MemoryType.WC,
            4 => MemoryType.WP,
            5 => (MemoryType)(rng.Coin() ? 2 : 3), // reserved
            _ => (MemoryType)7, // reserved in EPT
        };
    }

    private EptLevel Level() => (EptLevel)(byte)(1 + rng.Below(WalkLength));

    private AccessKind Kind() => (AccessKind)rng.Below(3);

    // ---- steps -----------------------------------------------------------------------------

    public MapStep Map()
    {
        ulong size = rng.Chance(1) ? OddSize() : PageSizeBytes();
        ulong gpa = Gpa(rng.Chance(95) ? size : K4);
        ulong hpa = Hpa(gpa, size);
        if (rng.Chance(1))
        {
            // Addresses the API must refuse as Unaligned.
            if (rng.Coin())
            {
                gpa |= 1UL << rng.Below(12);
            }
            else
            {
                hpa |= 1UL << rng.Below(12);
            }
        }

        MemoryType? mt = rng.Chance(35) ? MemType() : null;
        bool? ipat = rng.Chance(15) ? rng.Coin() : null;
        Remember(gpa, hpa, size);
        return new MapStep(new Gpa(gpa), new Hpa(hpa), size, Permissions(), mt, ipat);
    }

    private Gpa RangeStart(ulong size) => new(Gpa(rng.Chance(92) ? Math.Min(size, G1) : K4) | (rng.Chance(1) ? 8UL << rng.Below(8) : 0));

    public Step Operation()
    {
        switch (rng.Weighted([30, 9, 12, 7, 8, 6, 4, 5]))
        {
            case 0:
                return Map();
            case 1:
            {
                ulong size = RangeSize();
                return new UnmapStep(RangeStart(size), size);
            }

            case 2:
            {
                ulong size = RangeSize();
                return new ProtectStep(RangeStart(size), size, Permissions());
            }

            case 3:
            {
                ulong size = RangeSize();
                return new RetypeStep(RangeStart(size), size, MemType(), rng.Chance(20) ? rng.Coin() : null);
            }

            case 4:
                return new SplitStep(new Gpa(Gpa(K4) + (rng.Chance(20) ? rng.Below(512UL) * 8 : 0)));
            case 5:
            {
                ulong size = rng.Chance(3) ? rng.Pick<ulong>([K4, 2 * M2, M2 + K4]) : rng.Chance(80) ? M2 : G1;
                return new MergeStep(new Gpa(Gpa(rng.Chance(95) ? size : K4) | (rng.Chance(1) ? 8UL << rng.Below(8) : 0)), size);
            }

            case 6:
                return new InveptStep(rng.Coin() ? InveptType.SingleContext : InveptType.Global);
            default:
                return Edit();
        }
    }

    /// <summary>A raw edit that builds a state the API refuses: misconfigured permissions, reserved bits, bad types.</summary>
    public Step Edit()
    {
        ulong gpa = Gpa(K4);
        EptLevel level = Level();
        ulong? set = null, clear = null;
        Hpa? leafHpa = null;
        switch (rng.Weighted([18, 14, 12, 10, 12, 10, 8, 8, 8]))
        {
            case 0:
                // Write without read (or write+execute without read): EPT-MISCONFIG on every processor.
                clear = 0x1;
                set = rng.Coin() ? 0x2UL : 0x6UL;
                break;
            case 1:
                // Invalid memory type 2, 3 or 7 in a leaf (reserved bits in a non-leaf).
                clear = 0x38;
                set = (ulong)rng.Pick<int>([2, 3, 7]) << 3;
                break;
            case 2:
                // The large-page bit where it is not allowed (PML4E, PML5E) or where it makes a leaf.
                set = 0x80;
                level = rng.Chance(60) ? (EptLevel)(byte)WalkLength : level;
                break;
            case 3:
                // A physical-address bit at or above MAXPHYADDR.
                set = 1UL << (Cpu.MaxPhyAddr + (int)rng.Below((ulong)Math.Max(1, 52 - Cpu.MaxPhyAddr)));
                break;
            case 4:
                // Execute-only (misconfiguration without the capability), or no access at all.
                clear = rng.Coin() ? 0x3UL : 0x7UL;
                set = rng.Chance(60) ? 0x4UL : null;
                break;
            case 5:
                // A/D preset or cleared.
                if (rng.Coin())
                {
                    set = rng.Pick<ulong>([0x100, 0x200, 0x300]);
                }
                else
                {
                    clear = 0x300;
                }

                break;
            case 6:
                // A PDE or PDPTE turned into a leaf (aligned or not).
                level = rng.Coin() ? EptLevel.Pde : EptLevel.Pdpte;
                ulong span = level == EptLevel.Pde ? M2 : G1;
                leafHpa = new Hpa(Hpa(gpa & ~(span - 1), span) & ~(rng.Chance(80) ? span - 1 : K4 - 1));
                break;
            case 7:
                set = EditBit();
                break;
            default:
                clear = EditBit();
                break;
        }

        return new EditStep(new Gpa(gpa), level, set, clear, leafHpa);
    }

    /// <summary>One EPT bit to set or clear: a permission, type, flag or ignored bit; sometimes an address bit below or above MAXPHYADDR, or one of bits 52-62.</summary>
    private ulong EditBit() => rng.Weighted([80, 8, 6, 6]) switch
    {
        0 => rng.Pick<ulong>(EptBitsToFlip),
        1 => 1UL << (12 + rng.Below(Math.Max(1, Cpu.MaxPhyAddr - 12))),
        2 => 1UL << (Cpu.MaxPhyAddr + rng.Below(Math.Max(1, 52 - Cpu.MaxPhyAddr))),
        _ => 1UL << (52 + rng.Below(11)),
    };

    public PokeStep Poke()
    {
        // The hypervisor's table pages sit just below MAXPHYADDR; the root is usually among them.
        ulong page = PhysLimit - ((1UL << 16) << 12) + (rng.Below(4UL) * K4);
        ulong hpa = rng.Chance(70) ? page + (rng.Pick<ulong>(EdgeIndices) * 8) : Hpa(Gpa(K4), K4);
        ulong value = rng.Weighted([40, 30, 30]) switch
        {
            0 => 0,
            1 => (Hpa(Gpa(K4), K4) & ~(K4 - 1)) | 0x7,
            _ => rng.NextU64(),
        };
        return new PokeStep(new Hpa(hpa), value);
    }

    /// <summary>Turns guest paging off again (guest-linear addresses are then guest-physical).</summary>
    public GuestStep GuestOff()
    {
        GuestPaging = false;
        return GuestStep.Off();
    }

    public Step Probe()
    {
        if (GuestPaging && rng.Chance(60))
        {
            ulong gva = GuestAddress();
            return AccessStep.Linear(Kind(), new Gva(gva), rng.Chance(75) ? (byte)(rng.Coin() ? 3 : 0) : null);
        }

        return rng.Weighted([80, 15, 5]) switch
        {
            0 => AccessStep.Physical(Kind(), new Gpa(Gpa(K4) + AccessOffset())),
            1 => new EntryStep(new Gpa(Gpa(K4)), Level()),
            _ => new VmEntryStep(),
        };
    }

    private ulong AccessOffset() => rng.Weighted([50, 25, 25]) switch
    {
        0 => 0,
        1 => K4 - 8,
        _ => rng.Below(K4),
    };

    /// <summary>The guest-linear address of a probe: one that <c>gmap</c> set up, a neighbour, or a fresh canonical one.</summary>
    private ulong GuestAddress()
    {
        ulong gva = gvas.Count > 0 && rng.Chance(70)
            ? rng.Pick<ulong>(gvas) + (rng.Chance(70) ? AccessOffset() : rng.Pick<ulong>([K4, M2, G1]))
            : FreshGva();
        return Canonical(gva);
    }

    private ulong FreshGva()
    {
        ulong a = IndexedAddress(0, 4);
        return a;
    }

    private static ulong Canonical(ulong gva) => (gva & (1UL << 47)) != 0 ? gva | 0xFFFF_0000_0000_0000UL : gva & 0x0000_FFFF_FFFF_FFFFUL;

    /// <summary>
    /// Maps the guest's page-table area and turns 4-level guest paging on; returns the steps. The
    /// tables live inside EPT-mapped memory that later steps may restrict.
    /// </summary>
    public IEnumerable<Step> GuestSetUp()
    {
        ulong region = Gpa(M2) & ~(M2 - 1);
        if (region + M2 > Math.Min(WalkLimit, PhysLimit))
        {
            region = M2 * (1 + rng.Below(16UL));
        }

        yield return new MapStep(new Gpa(region), new Hpa(Hpa(region, M2)), M2, EptPermissions.ReadAccess | EptPermissions.WriteAccess | EptPermissions.ExecuteAccess);
        Remember(region, region, M2);
        ulong cr3 = region + (rng.Chance(80) ? 0UL : 0x1F_F000UL);
        ulong tablesStart = cr3 == region ? region + K4 : region;
        // Room for the guest tables of many gmaps (a mutant may collect dozens): 256 pages, inside the 2 MB area.
        ulong tablesEnd = tablesStart + (256 * K4);
        tablePages.Add(cr3);
        GuestPaging = true;
        yield return new GuestStep(
            true,
            new Gpa(cr3),
            new Gpa(tablesStart),
            new Gpa(tablesEnd),
            rng.Chance(30) ? rng.Coin() : null,
            rng.Chance(60) ? rng.Coin() : null,
            rng.Chance(30) ? rng.Coin() : null,
            rng.Weighted([75, 5, 10, 10]) switch
            {
                0 => null,
                1 => Contract.GuestPaging.PowerOnPat,
                2 => rng.Pick<ulong>([0x0007_0106_0007_0106UL, 0x0606_0606_0606_0606UL, 0, 0x0001_0405_0007_0406UL]),
                _ => RandomPat(),
            });
    }

    /// <summary>A guest PAT whose eight entries are each a valid type (UC, WC, WT, WP, WB, UC-).</summary>
    private ulong RandomPat()
    {
        ulong pat = 0;
        for (int i = 0; i < 8; i++)
        {
            pat |= (ulong)rng.Pick<int>([0, 1, 4, 5, 6, 7]) << (8 * i);
        }

        return pat;
    }

    /// <summary>
    /// A guest mapping whose leaf then gets a PAT index (PWT, PCD and PAT bits by <c>gedit</c>), and
    /// an INVEPT so that the accesses after it are compared: every guest PAT type then meets every
    /// EPT memory type.
    /// </summary>
    public IEnumerable<Step> TypedGMap()
    {
        GMapStep g = GMap();
        yield return g;
        int index = 1 + rng.Below(7);
        bool large = g.Size != K4;
        ulong set = ((index & 1) != 0 ? 0x8UL : 0) | ((index & 2) != 0 ? 0x10UL : 0) | ((index & 4) != 0 ? (large ? 0x1000UL : 0x80UL) : 0);
        var level = g.Size == G1 ? EptLevel.Pdpte : g.Size == M2 ? EptLevel.Pde : EptLevel.Pte;
        yield return new GEditStep(g.Gva, level, set, null);
        if (rng.Chance(50))
        {
            // The EPT side of the combination: the guest page's own EPT memory type.
            yield return new RetypeStep(new Gpa(g.Gpa.Value & ~(K4 - 1)), K4, rng.Pick<MemoryType>([MemoryType.UC, MemoryType.WC, MemoryType.WT, MemoryType.WP, MemoryType.WB]), rng.Chance(10) ? true : null);
        }

        yield return new InveptStep(rng.Chance(70) ? InveptType.SingleContext : InveptType.Global);
        if (rng.Chance(70))
        {
            yield return AccessStep.Linear(Kind(), g.Gva, rng.Chance(75) ? (byte)(rng.Coin() ? 3 : 0) : null);
        }
    }

    /// <summary>A guest mapping of a fresh or reused linear address onto mapped (or nearby) guest-physical memory.</summary>
    public GMapStep GMap()
    {
        ulong size = rng.Weighted([75, 20, 5]) switch
        {
            0 => K4,
            1 => M2,
            _ => G1,
        };
        if (rng.Chance(1))
        {
            size = OddSize();
        }

        ulong gva = Canonical(FreshGva() & ~(size - 1));
        if (rng.Chance(15))
        {
            gva = Canonical(gva | 0xFFFF_8000_0000_0000UL);
        }
        else if (rng.Chance(1))
        {
            gva |= 1UL << (48 + rng.Below(15)); // not canonical: OutOfRange
        }

        ulong gpa = Gpa(size) | (rng.Chance(1) ? 8UL << rng.Below(8) : 0);
        if (rng.Chance(10) && tablePages.Count > 0)
        {
            // A guest page that is the guest's own page table.
            gpa = rng.Pick<ulong>(tablePages) & ~(size - 1);
        }

        var perm = (GuestPagePermissions)rng.Below(8UL);
        if (gvas.Count < 64)
        {
            gvas.Add(gva);
        }

        return new GMapStep(new Gva(gva), new Gpa(gpa), size, perm);
    }

    public GEditStep GEdit()
    {
        ulong gva = GuestAddress();
        var level = (EptLevel)(byte)(1 + rng.Below(4));
        ulong bit = rng.Pick<ulong>(GuestBitsToFlip);
        return rng.Coin() ? new GEditStep(new Gva(gva), level, bit, null) : new GEditStep(new Gva(gva), level, null, bit);
    }

    /// <summary>A protect of the guest's own page-table pages: guest walks then hit EPT violations.</summary>
    public ProtectStep RestrictGuestTables()
    {
        ulong page = tablePages.Count > 0 ? rng.Pick<ulong>(tablePages) : Gpa(K4);
        var perm = rng.Pick<EptPermissions>([EptPermissions.ReadAccess, EptPermissions.None, EptPermissions.ReadAccess | EptPermissions.ExecuteAccess]);
        return new ProtectStep(new Gpa(page & ~(K4 - 1)), rng.Chance(70) ? K4 : M2, perm);
    }

    /// <summary>A small guest memory map (E820-like) and an identity map of it.</summary>
    public IEnumerable<Step> MemoryMapSetUp()
    {
        int ranges = 1 + rng.Below(3);
        ulong cursor = rng.Chance(50) ? 0 : M2 * rng.Below(8UL);
        for (int i = 0; i < ranges; i++)
        {
            ulong length = rng.Weighted([45, 45, 10]) switch
            {
                0 => K4 * (1 + rng.Below(64UL)),
                1 => M2 * (1 + rng.Below(8UL)),
                _ => G1,
            };
            bool odd = rng.Chance(3);
            yield return new MemoryStep(new Gpa(cursor | (odd && rng.Coin() ? 0x800UL : 0)), new Gpa(cursor + length + (odd ? 0x10UL : 0)), rng.Chance(70) ? MemoryType.WB : MemType());
            Remember(cursor, cursor, Math.Min(length, G1));
            cursor += length + (rng.Chance(50) ? 0UL : K4 * rng.Below(1024UL));
        }

        if (rng.Chance(50))
        {
            // The JOS layout: GPA + offset from offset-from on. The offset need not keep the huge
            // pages' alignment: a 2M-aligned GPA may meet an HPA that is only 4K-aligned.
            ulong offset = rng.Weighted([40, 25, 25, 5]) switch
            {
                0 => G1 * (1 + rng.Below(4UL)),
                1 => M2 * (1 + rng.Below(511UL)),
                2 => K4 * (1 + rng.Below(511UL)),
                _ => 0,
            };
            ulong from = rng.Chance(80) ? M2 * rng.Below(4UL) : K4 * (1 + rng.Below(511UL));
            yield return new IdentityMapStep(offset, new Gpa(from));
        }
        else
        {
            yield return new IdentityMapStep();
        }
    }
}

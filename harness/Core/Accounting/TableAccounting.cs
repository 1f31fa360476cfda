using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Running;

namespace EptFuzz.Harness.Accounting;

/// <summary>
/// Table-page accounting: after an operation, the table pages a hypervisor holds must be exactly
/// those reachable from its EPT roots. A page held but not reachable is a <c>leak</c> (a failed
/// operation that kept the tables it allocated, a merge that forgot to free); a reachable page the
/// hypervisor no longer holds is <c>freed-linked</c> (a use after free in waiting); a page two
/// entries link is <c>linked-twice</c>. Every translator walks the same bytes, so none of this
/// shows as a divergence; only the hypervisor's own account
/// (<see cref="IEptHypervisor.ReportTablePages"/>) reveals it.
/// </summary>
/// <remarks>
/// The walk reads the hypervisor's memory image: from each root (EPTP form, its level from bits
/// [5:3]), every present entry that is not a leaf links the table at its [51:12]. A PTE-level
/// table holds only leaves and is not read. What a table links is kept for the rest of the case
/// and read again only after an operation wrote its page, so a check costs a lookup per table
/// page rather than 512 reads (read afresh each time, the check halved the loop's cases/s).
/// </remarks>
public sealed class TableAccounting : IOperationInvariant
{
    public static TableAccounting Instance { get; } = new();

    private sealed class State
    {
        public readonly List<Hpa> Held = [];
        public readonly List<Hpa> Roots = [];
        public readonly HashSet<ulong> HeldSet = [];
        public readonly HashSet<ulong> Linked = [];
        public readonly Stack<(ulong Page, EptLevel Level)> Pending = new();
        /// <summary>The tables each non-PTE table page links, by page, with the level it was read at.</summary>
        public readonly Dictionary<ulong, (EptLevel Level, List<ulong> Links)> Links = [];
        /// <summary>Pages held at the last check, or -1 before the case's first.</summary>
        public int HeldCount = -1;
        /// <summary>The page being read.</summary>
        public readonly ulong[] Words = new ulong[512];
        /// <summary>Link lists of pages written since they were read, for the next reads (a case reads hundreds).</summary>
        private readonly Stack<List<ulong>> freeLists = new();

        public List<ulong> RentList() => freeLists.TryPop(out var list) ? list : [];

        public void Recycle(List<ulong> list)
        {
            if (freeLists.Count < MaxFreeLists && list.Capacity <= 512)
            {
                list.Clear();
                freeLists.Push(list);
            }
        }

        /// <summary>The table at <paramref name="page"/> was written: what it links must be read again.</summary>
        public bool Forget(ulong page)
        {
            if (!Links.Remove(page, out var known))
            {
                return false;
            }

            Recycle(known.Links);
            return true;
        }

        public void Clear()
        {
            bool large = Links.Count > 1024;
            foreach (var (_, known) in Links)
            {
                Recycle(known.Links);
            }

            Links.Clear();
            if (large)
            {
                Links.TrimExcess();
            }

            HeldCount = -1;
        }
    }

    [ThreadStatic]
    private static State? state;

    public void BeginCase() => (state ??= new State()).Clear();

    public InvariantViolation? Check(in OperationContext context)
    {
        var s = state ??= new State();
        // A write into a PTE table or a page that is no table cannot change what links what; one
        // into a PML5, PML4, PDPT or PD table (all known since the last check) can.
        bool relinked = false;
        var written = context.PagesWritten;
        for (int i = 0; i < written.Count; i++)
        {
            relinked |= s.Forget(written[i]);
        }

        // A raw edit or poke may unlink or relink tables on purpose (that is what the case tests);
        // from the first raw write into a table page on, the linkage is the case's, not the
        // hypervisor's, and nothing is checked for the rest of the case.
        if (context.TablesRawWritten || context.Step is InveptStep or ControlsStep or GuestStep or GMapStep or GEditStep or MemoryStep)
        {
            return null;
        }

        s.Held.Clear();
        s.Roots.Clear();
        if (!context.Hypervisor.ReportTablePages(s.Held, s.Roots))
        {
            return null;
        }

        // Linkage changes only by a write into a table that links others; the account changes by
        // taking or giving back pages (a new table, even one not linked yet, is taken; a table
        // linked anew is written into its parent). Neither moved: nothing to check.
        bool unchanged = !relinked && s.Held.Count == s.HeldCount;
        s.HeldCount = s.Held.Count;
        return unchanged ? null : Check(context.Hypervisor.Memory, s.Held, s.Roots, context.Hypervisor.Controls.Mbec, s);
    }

    /// <summary>The check on any memory image: null when the held pages and the reachable pages are the same set, each linked once.</summary>
    public static InvariantViolation? Check(IHostMemory memory, IReadOnlyList<Hpa> held, IReadOnlyList<Hpa> roots, bool mbec)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(held);
        ArgumentNullException.ThrowIfNull(roots);
        return Check(memory, held, roots, mbec, new State());
    }

    private static InvariantViolation? Check(IHostMemory memory, IReadOnlyList<Hpa> held, IReadOnlyList<Hpa> roots, bool mbec, State s)
    {
        var heldSet = s.HeldSet;
        var linked = s.Linked;
        var pending = s.Pending;
        heldSet.Clear();
        linked.Clear();
        pending.Clear();
        foreach (var page in held)
        {
            heldSet.Add(page.Value & EptAddress.Mask);
        }

        List<ulong>? twice = null;
        foreach (var root in roots)
        {
            ulong page = root.Value & EptAddress.Mask;
            if (linked.Add(page))
            {
                pending.Push((page, RootLevel(root.Value)));
            }
        }

        while (pending.Count > 0)
        {
            var (table, level) = pending.Pop();
            if (level == EptLevel.Pte)
            {
                continue;
            }

            foreach (ulong child in LinksOf(memory, table, level, mbec, s))
            {
                if (linked.Add(child))
                {
                    pending.Push((child, level - 1));
                }
                else
                {
                    (twice ??= []).Add(child);
                }
            }
        }

        if (twice is not null)
        {
            return new InvariantViolation("accounting", "linked-twice", $"table page(s) {Pages(twice)} linked from more than one entry");
        }

        if (heldSet.Count != linked.Count || !heldSet.SetEquals(linked))
        {
            var leaked = heldSet.Where(p => !linked.Contains(p)).Order().ToList();
            if (leaked.Count > 0)
            {
                return new InvariantViolation("accounting", "leak", $"{leaked.Count} table page(s) held but not reachable from the EPT roots: {Pages(leaked)}");
            }

            var freed = linked.Where(p => !heldSet.Contains(p)).Order().ToList();
            return new InvariantViolation("accounting", "freed-linked", $"{freed.Count} table page(s) reachable from the EPT roots but not held: {Pages(freed)}");
        }

        return null;
    }

    /// <summary>The tables a non-PTE table links: every present entry that is not a large-page leaf.</summary>
    private static List<ulong> LinksOf(IHostMemory memory, ulong table, EptLevel level, bool mbec, State s)
    {
        if (s.Links.TryGetValue(table, out var known))
        {
            if (known.Level == level)
            {
                return known.Links;
            }

            s.Links.Remove(table);
            s.Recycle(known.Links);
        }

        // One page copy, then a scan four words at a time: 512 reads through the interface, and
        // then a word-by-word scan, were most of the check's time.
        Span<ulong> words = s.Words;
        memory.ReadPage(new Hpa(table), words);
        // Present: any of bits 2:0, or bit 10 (user-mode execute) under mode-based execute control.
        var present = Vector256.Create(mbec ? 0x407UL : 0x7UL);
        // A large-page leaf (bit 7 in a PDE or PDPTE) links nothing.
        var large = Vector256.Create(level is EptLevel.Pde or EptLevel.Pdpte ? LargePage : 0UL);
        var links = s.RentList();
        ref ulong first = ref MemoryMarshal.GetReference(words);
        for (int i = 0; i < 512; i += Vector256<ulong>.Count)
        {
            var entries = Vector256.LoadUnsafe(ref first, (nuint)i);
            var linking = ~Vector256.Equals(entries & present, Vector256<ulong>.Zero) & Vector256.Equals(entries & large, Vector256<ulong>.Zero);
            for (uint mask = linking.ExtractMostSignificantBits(); mask != 0; mask &= mask - 1)
            {
                links.Add(words[i + BitOperations.TrailingZeroCount(mask)] & EptAddress.Mask);
            }
        }

        s.Links[table] = (level, links);
        return links;
    }

    /// <summary>A root's level from its EPTP-form bits [5:3] (walk length minus one): 5-level when 4, else 4-level.</summary>
    private static EptLevel RootLevel(ulong root) => ((root >> 3) & 7) == 4 ? EptLevel.Pml5e : EptLevel.Pml4e;

    private static string Pages(IEnumerable<ulong> pages)
    {
        var list = pages.Take(9).Select(p => $"0x{p:x}").ToList();
        return string.Join(", ", list.Take(8)) + (list.Count > 8 ? ", …" : string.Empty);
    }

    private const ulong LargePage = 1UL << 7;
    private const int MaxFreeLists = 4096;
}

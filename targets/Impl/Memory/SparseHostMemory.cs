using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EptFuzz.Contract;

namespace EptFuzz.Impl.Memory;

/// <summary>
/// Simulated host-physical memory: 4 KiB pages allocated on first write, everything else reads
/// as zero. Reads and writes to pages that exist allocate nothing (the translate path relies on it).
/// </summary>
public sealed class SparseHostMemory : IHostMemoryImage
{
    private const int WordsPerPage = 512;

    // A walk reads one entry from each of four or five table pages, again and again: a small
    // direct-mapped cache of page arrays in front of the dictionary spares most hash lookups.
    private const int CacheSlots = 64;

    /// <summary>Table walkers pass a way below this to <see cref="ReadWalkEntry"/>: one per walk level and structure.</summary>
    internal const int WalkWays = 9;

    private Dictionary<ulong, ulong[]> pages = freeMaps is { Count: > 0 } maps ? maps.Pop() : [];

    // Page maps of released memories on this thread, empty but with their capacity: every case
    // builds two memories, and growing their maps anew was a tenth of what a case allocated.
    [ThreadStatic]
    private static Stack<Dictionary<ulong, ulong[]>>? freeMaps;
    private const int MaxFreeMaps = 8;
    private const int MaxKeptCapacity = 1 << 14;
    private readonly ulong[] cachedNumbers = CreateEmptyTags(CacheSlots);
    private readonly ulong[]?[] cachedPages = new ulong[]?[CacheSlots];

    // Two slots for each walk way, number and page side by side: one bounds-free address for both.
    private readonly WaySlot[] ways = CreateEmptyWays();

    public ulong Read(Hpa address)
    {
        CheckAligned(address);
        // The cache hit inline (every read of a walk), the lookup out of line.
        ulong number = address.Value >> 12;
        int slot = Slot(number);
        ulong[]? page = cachedNumbers[slot] == number ? cachedPages[slot] : Find(number);
        return page is null ? 0 : page[(int)(address.Value >> 3) & 511];
    }

    /// <summary>One page copied (or cleared when never written) instead of 512 reads.</summary>
    public void ReadPage(Hpa page, Span<ulong> words)
    {
        CheckAligned(page);
        if ((page.Value & 0xFFF) != 0 || words.Length < WordsPerPage)
        {
            throw new ArgumentException($"a page read is 512 words from a 4 KiB-aligned address, not {words.Length} from {page.Value:x}");
        }

        if (Find(page.Value >> 12) is { } backed)
        {
            backed.CopyTo(words);
        }
        else
        {
            words[..WordsPerPage].Clear();
        }
    }

    /// <summary>
    /// A read for a table walker: entry <paramref name="index"/> of the 4 KiB table at
    /// <paramref name="table"/>. The walker names its level by <paramref name="way"/>, whose two
    /// slots hold the table pages that level read last. Neither the slots nor the index depend on
    /// the entry read at the level above, so the CPU can load this entry as soon as it has
    /// predicted that the page is in a slot: a walk is a chain of dependent reads, and this takes
    /// the address arithmetic and the slot lookup off it. Every entry is still read from its page.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong ReadWalkEntry(Hpa table, int index, int way)
    {
        if (!TryReadWalkEntry(table, index, way, out ulong value))
        {
            FillWay(table, way);
            TryReadWalkEntry(table, index, way, out value);
        }

        return value;
    }

    /// <summary>
    /// <see cref="ReadWalkEntry"/> when the table page is in one of the way's slots; false, with
    /// nothing read, when it is not (<see cref="FillWay"/> puts it there). Never calls anything,
    /// so a walk loop built on it keeps its values in registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryReadWalkEntry(Hpa table, int index, int way, out ulong value) => TryReadWalkEntry(ways, table, index, way, out value);

    /// <summary>The slots of the walk ways, for a walker that holds them through a walk instead of reloading them at every level.</summary>
    internal WaySlot[] Ways => ways;

    /// <summary><see cref="TryReadWalkEntry(Hpa, int, int, out ulong)"/> on the slots <see cref="Ways"/> gave.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool TryReadWalkEntry(WaySlot[] ways, Hpa table, int index, int way, out ulong value)
    {
        ulong number = table.Value >> 12;
        // Unchecked: the walkers' ways are constants below WalkWays, and a way slot holds a whole
        // page (512 words), so neither index can be out of range.
        ref WaySlot slot = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(ways), 2 * way);
        ulong[] page;
        if (slot.Number == number)
        {
            page = slot.Page;
        }
        else if (Unsafe.Add(ref slot, 1).Number == number)
        {
            page = Unsafe.Add(ref slot, 1).Page;
        }
        else
        {
            value = 0;
            return false;
        }

        value = Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(page), index & 511);
        return true;
    }

    /// <summary>
    /// Puts the table page at <paramref name="table"/> in the first slot of <paramref name="way"/>;
    /// the slot's page moves to the second. An unbacked page is held as <see cref="ZeroPage"/>
    /// until a write backs it (<see cref="ForgetWays"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal void FillWay(Hpa table, int way)
    {
        ulong number = table.Value >> 12;
        ref WaySlot slot = ref ways[2 * way];
        Unsafe.Add(ref slot, 1) = slot;
        slot = new WaySlot(number, Find(number) ?? ZeroPage);
    }

    public void Write(Hpa address, ulong value)
    {
        CheckAligned(address);
        ulong number = address.Value >> 12;
        ulong[] page = Find(number) ?? Back(number, PageRecycler.Rent());
        page[(address.Value >> 3) & 511] = value;
    }

    /// <summary>Writes the 512 words of the 4 KiB page at <paramref name="pageAddress"/>.</summary>
    public void WritePage(ulong pageAddress, ReadOnlySpan<ulong> words)
    {
        CheckAligned(new Hpa(pageAddress));
        if ((pageAddress & 0xFFF) != 0 || words.Length != WordsPerPage)
        {
            throw new ArgumentException($"a page write is 512 words at a 4 KiB-aligned address, not {words.Length} at {pageAddress:x}");
        }

        // Every word is written just below: a new page need not be cleared first.
        ulong number = pageAddress >> 12;
        ulong[] page = Find(number) ?? Back(number, PageRecycler.RentForOverwrite());
        words.CopyTo(page);
    }

    // Makes page the backing of page number: a way that held the number as the zero page lets it go.
    private ulong[] Back(ulong number, ulong[] page)
    {
        pages.Add(number, page);
        Remember(number, page);
        ForgetWays(number);
        return page;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong[]? Find(ulong number)
    {
        int slot = Slot(number);
        if (cachedNumbers[slot] == number)
        {
            return cachedPages[slot];
        }

        // An unbacked page is remembered too (as null): the pool reads all 512 words of every
        // fresh table page before using it. Its first write replaces the null in the same slot.
        pages.TryGetValue(number, out ulong[]? page);
        Remember(number, page);
        return page;
    }

    // A page that a write backs may be held in a way as the zero page: the way lets it go.
    private void ForgetWays(ulong number)
    {
        foreach (ref WaySlot slot in ways.AsSpan())
        {
            if (slot.Number == number)
            {
                slot = new WaySlot(NoPage, ZeroPage);
            }
        }
    }

    private void Remember(ulong number, ulong[]? page)
    {
        int slot = Slot(number);
        cachedNumbers[slot] = number;
        cachedPages[slot] = page;
    }

    private static int Slot(ulong number) => (int)((number ^ (number >> 6) ^ (number >> 12)) & (CacheSlots - 1));

    // A page number is at most 2^52 - 1, so all-ones marks an empty slot.
    private const ulong NoPage = ulong.MaxValue;

    private static ulong[] CreateEmptyTags(int count)
    {
        var tags = new ulong[count];
        Array.Fill(tags, NoPage);
        return tags;
    }

    // What a way holds for an unbacked page: all zero, never written, shared by every memory.
    private static readonly ulong[] ZeroPage = new ulong[WordsPerPage];

    private static WaySlot[] CreateEmptyWays()
    {
        var ways = new WaySlot[2 * WalkWays];
        Array.Fill(ways, new WaySlot(NoPage, ZeroPage));
        return ways;
    }

    internal record struct WaySlot(ulong Number, ulong[] Page);

    /// <summary>
    /// True when no word of the 4 KiB page at <paramref name="pageAddress"/> is set (an unbacked
    /// page is all zero): a fresh table page needs no clearing then.
    /// </summary>
    public bool IsZeroPage(ulong pageAddress) => IsZeroRange(pageAddress, 4096);

    /// <summary>True when the first <paramref name="bytes"/> of the 4 KiB page at <paramref name="pageAddress"/> are zero.</summary>
    public bool IsZeroRange(ulong pageAddress, ulong bytes)
    {
        ulong[]? page = Find(pageAddress >> 12);
        return page is null || page.AsSpan(0, (int)Math.Min(bytes, 4096) / 8).IndexOfAnyExcept(0UL) < 0;
    }

    /// <summary>
    /// Makes the whole memory read as zero again and hands its pages to this thread's recycler,
    /// so that the next case's memory (a fresh hypervisor, a fresh session) reuses them instead of
    /// allocating: the differential loop otherwise allocates a few hundred KiB a case, and the
    /// garbage collections that follow stop every worker. Call it only when done with the memory.
    /// </summary>
    public void Release()
    {
        PageRecycler.ReturnAll(pages.Values);
        pages.Clear();
        Stack<Dictionary<ulong, ulong[]>> maps = freeMaps ??= new Stack<Dictionary<ulong, ulong[]>>();
        if (maps.Count < MaxFreeMaps && pages.EnsureCapacity(0) <= MaxKeptCapacity)
        {
            // The map is the next memory's now; this one stays usable, empty, with a map of its own.
            maps.Push(pages);
            pages = [];
        }

        Array.Fill(cachedNumbers, NoPage);
        Array.Clear(cachedPages);
        Array.Fill(ways, new WaySlot(NoPage, ZeroPage));
    }

    /// <summary>Number of backed pages (tests use it to see that memory stays bounded).</summary>
    public int PageCount => pages.Count;

    public IEnumerable<Hpa> Pages
    {
        get
        {
            var numbers = new List<ulong>(pages.Keys);
            numbers.Sort();
            foreach (ulong number in numbers)
            {
                yield return new Hpa(number << 12);
            }
        }
    }

    private static void CheckAligned(Hpa address)
    {
        // Every table entry and every guest entry is an aligned 8-byte word; anything else is a caller bug.
        if ((address.Value & 7) != 0)
        {
            ThrowUnaligned(address);
        }
    }

    // Kept out of CheckAligned so that the check inlines into every read of the walk.
    [DoesNotReturn]
    private static void ThrowUnaligned(Hpa address) =>
        throw new ArgumentException($"host-memory word address {address} is not 8-byte aligned", nameof(address));
}

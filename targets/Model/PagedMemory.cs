using Ref = EptFuzz.Reference;

namespace EptFuzz.Targets.Model;

/// <summary>
/// The model session's host memory: the same contract as <see cref="Ref.SparseMemory"/> (8-byte
/// words at aligned addresses, 0 where never written), kept in 4 KiB pages instead of a word
/// dictionary. Operations write whole tables at a time (a 1 GiB page split into 4 KiB pages is
/// 262,144 words), which the word dictionary paid for in rehashing and 24 bytes a word; here a
/// run of writes into one page costs no hash lookup. The model itself only reads it.
/// </summary>
internal sealed class PagedMemory : Ref.IPhysicalMemory
{
    /// <summary>Pages of closed sessions on this thread (a worker runs its cases on one thread), cleared when reused.</summary>
    [ThreadStatic]
    private static Stack<ulong[]>? free;
    private const int MaxFreePages = 4096;

    /// <summary>Page maps of closed sessions on this thread, empty but with their capacity.</summary>
    [ThreadStatic]
    private static Stack<Dictionary<ulong, ulong[]>>? freeMaps;
    private const int MaxFreeMaps = 4;
    private const int MaxKeptCapacity = 1 << 14;

    private Dictionary<ulong, ulong[]> pages = freeMaps is { Count: > 0 } maps ? maps.Pop() : [];
    private ulong lastNumber = ulong.MaxValue;
    private ulong[]? lastPage;

    public ulong Read(Ref.Hpa address)
    {
        CheckAligned(address);
        ulong[]? page = Find(address.Value >> 12, create: false);
        return page is null ? 0 : page[(address.Value >> 3) & 511];
    }

    public void Write(Ref.Hpa address, ulong value)
    {
        CheckAligned(address);
        Find(address.Value >> 12, create: true)![(address.Value >> 3) & 511] = value;
    }

    /// <summary>Writes the 512 words of a 4 KiB page.</summary>
    public void WritePage(ulong pageAddress, ReadOnlySpan<ulong> words)
    {
        if ((pageAddress & 0xFFF) != 0 || words.Length != 512)
        {
            throw new ArgumentException($"a page write is 512 words at a 4 KiB-aligned address, not {words.Length} at {pageAddress:x}");
        }

        words.CopyTo(Find(pageAddress >> 12, create: true, whole: true));
    }

    public void Apply(IReadOnlyList<Ref.PhysicalWrite> writes)
    {
        for (int i = 0; i < writes.Count; i++)
        {
            Write(writes[i].Address, writes[i].Value);
        }
    }

    /// <summary>
    /// Forgets everything (all words read 0 again) and keeps the pages for the next session opened
    /// on this thread, to be cleared on reuse: a fuzzing worker would otherwise allocate them for
    /// every case.
    /// </summary>
    public void Release()
    {
        Stack<ulong[]> pool = free ??= new Stack<ulong[]>();
        foreach (ulong[] page in pages.Values)
        {
            if (pool.Count < MaxFreePages)
            {
                pool.Push(page);
            }
        }

        pages.Clear();
        Stack<Dictionary<ulong, ulong[]>> maps = freeMaps ??= new Stack<Dictionary<ulong, ulong[]>>();
        if (maps.Count < MaxFreeMaps && pages.EnsureCapacity(0) <= MaxKeptCapacity)
        {
            // The map is the next session's now; this memory stays usable, empty, with a map of its own.
            maps.Push(pages);
            pages = [];
        }

        lastNumber = ulong.MaxValue;
        lastPage = null;
    }

    private ulong[]? Find(ulong number, bool create, bool whole = false)
    {
        if (number == lastNumber)
        {
            return lastPage;
        }

        if (!pages.TryGetValue(number, out ulong[]? page))
        {
            if (!create)
            {
                // Not remembered: a later write to this page must create it.
                return null;
            }

            page = free is { Count: > 0 } ? free.Pop() : new ulong[512];
            if (!whole)
            {
                // Recycled pages come back as they were left; one written whole needs no clearing.
                Array.Clear(page);
            }

            pages.Add(number, page);
        }

        lastNumber = number;
        lastPage = page;
        return page;
    }

    private static void CheckAligned(Ref.Hpa address)
    {
        if ((address.Value & 7) != 0)
        {
            throw new ArgumentException($"host-memory words are 8-byte aligned: {address}", nameof(address));
        }
    }
}

namespace EptFuzz.Impl.Memory;

/// <summary>
/// 4 KiB pages kept per thread for reuse: a fuzzing worker runs thousands of cases a second on one
/// thread, each building host memory from nothing, so the pages of a finished case serve the next
/// one. Pages come back as they are and are cleared when rented for a page that must start at
/// zero: most table pages are written whole (a new table, a page effect) and need no clearing,
/// and a page cleared just before its first use is in the cache for it.
/// </summary>
internal static class PageRecycler
{
    // Enough for the tables of the largest generated cases (a 1 GiB page split into 4 KiB pages
    // is 513 table pages) with room to spare; beyond it pages are left to the garbage collector.
    private const int MaxPages = 4096;

    [ThreadStatic]
    private static Stack<ulong[]>? recycled;

    /// <summary>A page of 512 zeros.</summary>
    public static ulong[] Rent()
    {
        if (recycled is { Count: > 0 } free)
        {
            ulong[] page = free.Pop();
            Array.Clear(page);
            return page;
        }

        return new ulong[512];
    }

    /// <summary>A page with any content, for a caller that writes all 512 words before reading one.</summary>
    public static ulong[] RentForOverwrite() => recycled is { Count: > 0 } free ? free.Pop() : new ulong[512];

    public static void Return(ulong[] page) => Return(page, recycled ??= new Stack<ulong[]>());

    /// <summary>Returns every page of <paramref name="pages"/>: one look-up of the thread's stack for all of them.</summary>
    public static void ReturnAll(Dictionary<ulong, ulong[]>.ValueCollection pages)
    {
        Stack<ulong[]> free = recycled ??= new Stack<ulong[]>();
        foreach (ulong[] page in pages)
        {
            Return(page, free);
        }
    }

    private static void Return(ulong[] page, Stack<ulong[]> free)
    {
        if (free.Count < MaxPages)
        {
            free.Push(page);
        }
    }
}

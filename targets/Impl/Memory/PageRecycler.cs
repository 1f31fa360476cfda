namespace EptFuzz.Impl.Memory;

/// <summary>
/// Zeroed 4 KiB pages kept per thread for reuse: a fuzzing worker runs thousands of cases a second
/// on one thread, each building host memory from nothing, so the pages of a finished case serve
/// the next one. Every page in the recycler is all zero.
/// </summary>
internal static class PageRecycler
{
    // Enough for the tables of the largest generated cases (a 1 GiB page split into 4 KiB pages
    // is 513 table pages) with room to spare; beyond it pages are left to the garbage collector.
    private const int MaxPages = 4096;

    [ThreadStatic]
    private static Stack<ulong[]>? t_free;

    public static ulong[] Rent() => t_free is { Count: > 0 } free ? free.Pop() : new ulong[512];

    public static void Return(ulong[] page) => Return(page, t_free ??= new Stack<ulong[]>());

    /// <summary>Returns every page of <paramref name="pages"/>: one look-up of the thread's stack for all of them.</summary>
    public static void ReturnAll(Dictionary<ulong, ulong[]>.ValueCollection pages)
    {
        Stack<ulong[]> free = t_free ??= new Stack<ulong[]>();
        foreach (ulong[] page in pages)
        {
            Return(page, free);
        }
    }

    private static void Return(ulong[] page, Stack<ulong[]> free)
    {
        if (free.Count < MaxPages)
        {
            Array.Clear(page);
            free.Push(page);
        }
    }
}

namespace EptFuzz.Harness.Running;

/// <summary>
/// The runner's copy of host memory, only to know what a write overwrote: 64-bit words in 4 KiB
/// pages allocated on first write; a word never written reads as 0. Operations write runs of
/// entries into one table page (a split writes 512), so the last page is remembered and most
/// writes cost no hash lookup.
/// </summary>
internal sealed class WordMirror
{
    /// <summary>Pages of finished cases on this thread (a worker runs its cases on one thread), cleared when reused.</summary>
    [ThreadStatic]
    private static Stack<ulong[]>? free;
    private const int MaxFreePages = 4096;

    private readonly Dictionary<ulong, ulong[]> pages = [];
    private ulong lastNumber = ulong.MaxValue;
    private ulong[]? lastPage;

    /// <summary>Stores <paramref name="value"/> at <paramref name="address"/> and returns the word it replaced.</summary>
    public ulong Exchange(ulong address, ulong value)
    {
        ulong[] page = Page(address >> 12);
        ref ulong word = ref page[(address >> 3) & 511];
        ulong old = word;
        word = value;
        return old;
    }

    /// <summary>Stores a whole 4 KiB page.</summary>
    public void WritePage(ulong pageAddress, ReadOnlySpan<ulong> words) => words.CopyTo(Page(pageAddress >> 12, whole: true));

    /// <summary>
    /// Forgets everything (all words read 0 again) and keeps the pages for the next case run on
    /// this thread, to be cleared on reuse: a fuzzing worker would otherwise allocate them anew
    /// for every case.
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
        lastNumber = ulong.MaxValue;
        lastPage = null;
    }

    private ulong[] Page(ulong number, bool whole = false)
    {
        if (number == lastNumber)
        {
            return lastPage!;
        }

        if (!pages.TryGetValue(number, out ulong[]? page))
        {
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
}

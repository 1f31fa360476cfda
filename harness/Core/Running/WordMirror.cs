namespace EptFuzz.Harness.Running;

/// <summary>
/// The runner's copy of host memory, only to know what a write overwrote: 64-bit words in 4 KiB
/// pages allocated on first write; a word never written reads as 0. Operations write runs of
/// entries into one table page (a split writes 512), so the last page is remembered and most
/// writes cost no hash lookup.
/// </summary>
internal sealed class WordMirror
{
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

    private ulong[] Page(ulong number)
    {
        if (number == lastNumber)
        {
            return lastPage!;
        }

        if (!pages.TryGetValue(number, out ulong[]? page))
        {
            page = new ulong[512];
            pages.Add(number, page);
        }

        lastNumber = number;
        lastPage = page;
        return page;
    }
}

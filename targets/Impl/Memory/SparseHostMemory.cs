using EptFuzz.Contract;

namespace EptFuzz.Impl.Memory;

/// <summary>
/// Simulated host-physical memory: 4 KiB pages allocated on first write, everything else reads
/// as zero. Reads and writes to pages that exist allocate nothing (the translate path relies on it).
/// </summary>
public sealed class SparseHostMemory : IHostMemoryImage
{
    private const int WordsPerPage = 512;

    private readonly Dictionary<ulong, ulong[]> _pages = [];

    public ulong Read(Hpa address)
    {
        CheckAligned(address);
        return _pages.TryGetValue(address.Value >> 12, out ulong[]? page) ? page[(address.Value >> 3) & 511] : 0;
    }

    public void Write(Hpa address, ulong value)
    {
        CheckAligned(address);
        ulong number = address.Value >> 12;
        if (!_pages.TryGetValue(number, out ulong[]? page))
        {
            page = new ulong[WordsPerPage];
            _pages.Add(number, page);
        }

        page[(address.Value >> 3) & 511] = value;
    }

    /// <summary>Number of backed pages (tests use it to see that memory stays bounded).</summary>
    public int PageCount => _pages.Count;

    public IEnumerable<Hpa> Pages
    {
        get
        {
            var numbers = new List<ulong>(_pages.Keys);
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
            throw new ArgumentException($"host-memory word address {address} is not 8-byte aligned", nameof(address));
        }
    }
}

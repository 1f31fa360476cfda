using EptFuzz.Contract;

namespace EptFuzz.Impl.Ept;

/// <summary>
/// Level geometry as data, so that every walk is one loop: the GPA bits a level indexes with, and
/// the span one entry covers. Identical for EPT and for 4-level guest paging.
/// </summary>
public static class LevelGeometry
{
    public const int EntriesPerTable = 512;
    public const ulong PageBytes = 4096;

    /// <summary>Bit position of the lowest address bit that indexes a table at this level (SDM EPT-WALK-1).</summary>
    public static int Shift(EptLevel level) => 12 + 9 * ((int)level - 1);

    /// <summary>Bytes one entry at this level covers.</summary>
    public static ulong Span(EptLevel level) => 1UL << Shift(level);

    /// <summary>Index into the table at this level: 9 address bits.</summary>
    public static int Index(ulong address, EptLevel level) => IndexAt(address, Shift(level));

    /// <summary>Index into a table whose level's <see cref="Shift"/> is <paramref name="shift"/> (for a walk that carries the shift down the levels).</summary>
    public static int IndexAt(ulong address, int shift) => (int)((address >> shift) & 511);

    /// <summary>Host-physical address of the entry for <paramref name="address"/> in the table at <paramref name="table"/>.</summary>
    public static ulong EntryAddress(ulong table, ulong address, EptLevel level) => table + ((ulong)Index(address, level) << 3);

    /// <summary>PDPTEs and PDEs may map pages; PTEs always do; PML4Es and PML5Es never.</summary>
    public static bool CanMapPage(EptLevel level) => level <= EptLevel.Pdpte;

    /// <summary>The level whose entries map pages of this size.</summary>
    public static EptLevel LeafLevel(PageSize size) => (EptLevel)(byte)size;

    public static PageSize SizeOf(EptLevel leafLevel) => (PageSize)(byte)leafLevel;

    /// <summary>The page size whose byte count is <paramref name="bytes"/>, if any.</summary>
    public static bool TryPageSize(ulong bytes, out PageSize size)
    {
        size = bytes switch
        {
            1UL << 12 => PageSize.Size4K,
            1UL << 21 => PageSize.Size2M,
            1UL << 30 => PageSize.Size1G,
            _ => 0,
        };
        return size != 0;
    }

    /// <summary>Address bits of a leaf at this level: [51:shift].</summary>
    public static ulong LeafAddressMask(EptLevel level) => EptBits.AddressMask & ~(Span(level) - 1);
}

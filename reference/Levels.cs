namespace EptFuzz.Reference;

/// <summary>
/// A paging-structure level, numbered as the SDM's walk counts them (1 = the table whose entries
/// map 4 KB pages). EPT and 4-level guest paging share the geometry.
/// </summary>
public enum Level : byte
{
    Pte = 1,
    Pde = 2,
    Pdpte = 3,
    Pml4e = 4,
    Pml5e = 5,
}

/// <summary>Size of the page a leaf maps.</summary>
public enum PageSize : byte
{
    Size4K = 1,
    Size2M = 2,
    Size1G = 3,
}

/// <summary>
/// Level geometry as data, so a walk is a loop. See: "EPT Translation Mechanism" (§28.2.2),
/// EPT-WALK-1/-3: each table holds 512 eight-byte entries; the entry at level L is selected by
/// address bits [12 + 9L - 1 : 12 + 9(L-1)], i.e. PML5E [56:48], PML4E [47:39], PDPTE [38:30],
/// PDE [29:21], PTE [20:12].
/// </summary>
public static class LevelGeometry
{
    public const int EntriesPerTable = 512;

    /// <summary>The lowest address bit that selects an entry at this level (= the log2 of the size one entry covers).</summary>
    public static int Shift(Level level) => 12 + 9 * ((int)level - 1);

    /// <summary>The index (0..511) of the entry selected at this level.</summary>
    public static ulong Index(ulong address, Level level) => (address >> Shift(level)) & (EntriesPerTable - 1);

    /// <summary>The page size of a leaf at this level; only levels 1 to 3 can be leaves.</summary>
    public static PageSize LeafSize(Level level) => (PageSize)(byte)level;

    public static int Shift(PageSize size) => Shift((Level)(byte)size);

    /// <summary>Address bits [shift-1:0] of a page of this size: the offset the leaf passes through.</summary>
    public static ulong OffsetMask(PageSize size) => (1UL << Shift(size)) - 1;
}

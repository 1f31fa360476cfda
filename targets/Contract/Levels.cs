namespace EptFuzz.Contract;

/// <summary>Paging-structure level; the numeric value is the level number of the case format.</summary>
public enum EptLevel : byte
{
    Pte = 1,
    Pde = 2,
    Pdpte = 3,
    Pml4e = 4,
    Pml5e = 5,
}

/// <summary>
/// The geometry of a level, defined once: a level-L entry translates address bits
/// [12 + 9L - 1 : 12 + 9(L-1)] and, as a leaf, maps 2^(12 + 9(L-1)) bytes.
/// </summary>
public static class EptLevels
{
    /// <summary>The address bit where a level's index starts: 12, 21, 30, 39, 48.</summary>
    public static int Shift(this EptLevel level) => 12 + 9 * ((int)level - 1);

    /// <summary>The bytes one entry of the level covers: 4 KiB, 2 MiB, 1 GiB, 512 GiB, 256 TiB.</summary>
    public static ulong Span(this EptLevel level) => 1UL << level.Shift();

    /// <summary>The entry's index (0 to 511) in the level's table for an address.</summary>
    public static int Index(this EptLevel level, ulong address) => (int)((address >> level.Shift()) & 0x1FF);
}

/// <summary>Physical-address fields shared by the EPTP and every EPT entry.</summary>
public static class EptAddress
{
    /// <summary>[51:12]: the 4 KiB-aligned physical address in an EPTP or an EPT entry.</summary>
    public const ulong Mask = 0x000F_FFFF_FFFF_F000UL;
}

/// <summary>Size of a page; the numeric value is the level of the leaf that maps it.</summary>
public enum PageSize : byte
{
    Size4K = 1,
    Size2M = 2,
    Size1G = 3,
}

public static class PageSizeExtensions
{
    public static int Shift(this PageSize size) => ((EptLevel)(byte)size).Shift();

    public static ulong Bytes(this PageSize size) => 1UL << size.Shift();

    public static EptLevel LeafLevel(this PageSize size) => (EptLevel)(byte)size;

    public static string Text(this PageSize size) => size switch
    {
        PageSize.Size4K => "4K",
        PageSize.Size2M => "2M",
        PageSize.Size1G => "1G",
        _ => $"level{(int)size}",
    };
}

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

/// <summary>Size of a page; the numeric value is the level of the leaf that maps it.</summary>
public enum PageSize : byte
{
    Size4K = 1,
    Size2M = 2,
    Size1G = 3,
}

public static class PageSizeExtensions
{
    public static int Shift(this PageSize size) => 12 + 9 * ((int)size - 1);

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

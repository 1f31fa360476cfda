namespace EptFuzz.Impl.Cpu;

/// <summary>Bits of a 4-level (IA-32e) guest paging entry, Vol 3A §4.5.</summary>
public static class GuestBits
{
    // [0] present
    public const ulong Present = 1UL << 0;
    // [1] read/write
    public const ulong ReadWrite = 1UL << 1;
    // [2] user/supervisor
    public const ulong UserSupervisor = 1UL << 2;
    // [3] page-level write-through
    public const ulong WriteThrough = 1UL << 3;
    // [4] page-level cache disable
    public const ulong CacheDisable = 1UL << 4;
    // [5] accessed
    public const ulong Accessed = 1UL << 5;
    // [6] dirty (leaves)
    public const ulong Dirty = 1UL << 6;
    // [7] page size in PDPTEs/PDEs; PAT in PTEs; reserved in PML4Es
    public const ulong PageSize = 1UL << 7;
    // [12] PAT in a PDPTE/PDE that maps a page
    public const ulong LargePat = 1UL << 12;
    // [63] execute-disable (reserved when IA32_EFER.NXE = 0)
    public const ulong ExecuteDisable = 1UL << 63;

    /// <summary>[N-1:12] the address of the next table or page.</summary>
    public static ulong AddressMask(int maxPhyAddr) => ((1UL << maxPhyAddr) - 1) & ~0xFFFUL;

    /// <summary>[51:N] is reserved in every entry.</summary>
    public static ulong ReservedAddressBits(int maxPhyAddr) => 0x000F_FFFF_FFFF_F000UL & ~((1UL << maxPhyAddr) - 1);

    /// <summary>A 48-bit linear address is canonical when bits 63:47 are all equal.</summary>
    public static bool IsCanonical(ulong linear)
    {
        ulong top = linear >> 47;
        return top == 0 || top == (1UL << 17) - 1;
    }
}

using EptFuzz.Contract;

namespace EptFuzz.Impl.Ept;

/// <summary>
/// The bit layout of an EPT paging-structure entry (SDM "EPT Translation Mechanism", Tables 28-1..28-6),
/// written from the manual for this implementation alone: it shares no decoder with the reference.
/// </summary>
public static class EptBits
{
    // [0] read access
    public const ulong ReadAccess = 1UL << 0;
    // [1] write access
    public const ulong WriteAccess = 1UL << 1;
    // [2] execute access (supervisor-mode execute under MBEC)
    public const ulong ExecuteAccess = 1UL << 2;
    // [5:3] EPT memory type (leaves only; reserved in non-leaf entries)
    public const int MemoryTypeShift = 3;
    public const ulong MemoryTypeMask = 7UL << MemoryTypeShift;
    // [6] ignore PAT (leaves only)
    public const ulong IgnorePat = 1UL << 6;
    // [7] the PDPTE/PDE maps a page (reserved in PML4E/PML5E, ignored in a PTE)
    public const ulong LargePage = 1UL << 7;
    // [8] accessed, when EPTP[6] = 1
    public const ulong Accessed = 1UL << 8;
    // [9] dirty (leaves only), when EPTP[6] = 1
    public const ulong Dirty = 1UL << 9;
    // [10] user-mode execute, under the MBEC control
    public const ulong UserModeExecute = 1UL << 10;
    // [51:12] physical address (the bits at and above MAXPHYADDR are reserved)
    public const ulong AddressMask = 0x000F_FFFF_FFFF_F000UL;

    /// <summary>Every permission bit an entry can carry.</summary>
    public const ulong PermissionMask = ReadAccess | WriteAccess | ExecuteAccess | UserModeExecute;

    /// <summary>The attribute bits that Retype changes.</summary>
    public const ulong TypeMask = MemoryTypeMask | IgnorePat;

    public static ulong Encode(EptPermissions permissions)
    {
        ulong bits = 0;
        if ((permissions & EptPermissions.ReadAccess) != 0) bits |= ReadAccess;
        if ((permissions & EptPermissions.WriteAccess) != 0) bits |= WriteAccess;
        if ((permissions & EptPermissions.ExecuteAccess) != 0) bits |= ExecuteAccess;
        if ((permissions & EptPermissions.UserModeExecute) != 0) bits |= UserModeExecute;
        return bits;
    }

    // Bits 0..2 keep their places and bit 10 (XU) becomes bit 3 of the contract's flags: no branch per bit.
    public static EptPermissions Decode(ulong entry) =>
        (EptPermissions)((entry & (ReadAccess | WriteAccess | ExecuteAccess)) | ((entry & UserModeExecute) >> 7));

    public static ulong EncodeType(MemoryType memoryType, bool ignorePat) =>
        ((ulong)memoryType << MemoryTypeShift) | (ignorePat ? IgnorePat : 0);

    public static MemoryType DecodeType(ulong entry) => (MemoryType)((entry & MemoryTypeMask) >> MemoryTypeShift);

    /// <summary>EPT memory types 2, 3 and 7 are reserved (EPT-MISCONFIG-5).</summary>
    public static bool IsValidEptMemoryType(MemoryType memoryType) =>
        memoryType is MemoryType.UC or MemoryType.WC or MemoryType.WT or MemoryType.WP or MemoryType.WB;

    /// <summary>Mask of the physical-address bits below MAXPHYADDR within [51:12].</summary>
    public static ulong AddressMaskBelow(int maxPhyAddr) => AddressMask & ((1UL << maxPhyAddr) - 1);

    /// <summary>
    /// EPT-PRESENT-1: not present iff bits 2:0 are 0 and, under the MBEC control, bit 10 is 0.
    /// </summary>
    public static bool IsPresent(ulong entry, bool mbecControl) =>
        (entry & (ReadAccess | WriteAccess | ExecuteAccess)) != 0 || (mbecControl && (entry & UserModeExecute) != 0);
}

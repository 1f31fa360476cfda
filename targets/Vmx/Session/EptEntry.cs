using EptFuzz.Contract;

namespace EptFuzz.Targets.Vmx.Session;

/// <summary>
/// The oracle's own reading of EPT entries, only as far as relocation needs it: presence, leaf or
/// table, and the address field. (Deliberately independent of the reference model and of the
/// implementation under test.)
/// </summary>
internal static class EptEntry
{
    public const ulong ReadWriteExecute = 0x7;
    /// <summary>Bit 10: user-mode execute, a presence bit only under the MBEC control.</summary>
    public const ulong UserExecute = 1UL << 10;
    /// <summary>Bit 7: page size in a PDE/PDPTE.</summary>
    public const ulong LargePage = 1UL << 7;
    public const ulong Accessed = 1UL << 8;
    public const ulong Dirty = 1UL << 9;

    /// <summary>Bits N-1:12, N = MAXPHYADDR.</summary>
    public static ulong AddressMask(int maxPhyAddr) => ((1UL << maxPhyAddr) - 1) & ~0xFFFUL;

    public static bool IsPresent(ulong entry, bool mbec) => (entry & ReadWriteExecute) != 0 || (mbec && (entry & UserExecute) != 0);

    /// <summary>A PTE, or a PDE/PDPTE with bit 7 set. (Bit 7 in a PML4E is reserved, so that entry is a table pointer.)</summary>
    public static bool IsLeaf(ulong entry, EptLevel level) =>
        level == EptLevel.Pte || (level is EptLevel.Pde or EptLevel.Pdpte && (entry & LargePage) != 0);

    public static PageSize LeafSize(EptLevel level) => (PageSize)(byte)level;

    public static int Index(ulong gpa, EptLevel level) => (int)((gpa >> (12 + 9 * ((int)level - 1))) & 0x1FF);
}

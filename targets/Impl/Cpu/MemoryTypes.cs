using System.Runtime.CompilerServices;
using EptFuzz.Contract;

namespace EptFuzz.Impl.Cpu;

/// <summary>The effective memory type of a translated access (EPT-MT-4, EPT-MT-5).</summary>
public static class MemoryTypes
{
    // Rows: EPT type in the MTRR role (UC, WC, WT, WP, WB); columns: PAT type (UC, UC-, WC, WT, WB, WP).
    // Vol 3A "Selecting Memory Types for Pentium III and More Recent Processor Families", Table 11-7.
    private static ReadOnlySpan<byte> Table =>
    [
        0, 0, 1, 0, 0, 0, // UC
        0, 1, 1, 0, 1, 0, // WC
        0, 0, 1, 4, 4, 5, // WT
        0, 1, 1, 4, 5, 5, // WP
        0, 0, 1, 4, 6, 5, // WB
    ];

    /// <summary>CR0.CD is always 0 here: IPAT = 1 gives the EPT type, else Table 11-7 of (EPT type, PAT type).</summary>
    // Inlined: on every translated access, where the PAT type is often a constant (WB with paging off).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static MemoryType Effective(MemoryType ept, bool ignorePat, MemoryType pat)
    {
        if (ignorePat)
        {
            return ept;
        }

        int row = ept switch
        {
            MemoryType.UC => 0,
            MemoryType.WC => 1,
            MemoryType.WT => 2,
            MemoryType.WP => 3,
            _ => 4,
        };
        int column = pat switch
        {
            MemoryType.UCMinus => 1,
            MemoryType.WC => 2,
            MemoryType.WT => 3,
            MemoryType.WB => 4,
            MemoryType.WP => 5,
            // UC, and the reserved PAT encodings 2 and 3 (which WRMSR would refuse): strongest ordering.
            _ => 0,
        };
        return (MemoryType)Table[row * 6 + column];
    }

    /// <summary>The IA32_PAT entry selected by PAT*4 + PCD*2 + PWT.</summary>
    public static MemoryType PatEntry(ulong pat, int index) => (MemoryType)((pat >> (index * 8)) & 7);
}

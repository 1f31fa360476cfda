using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
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

    // Index: IPAT * 8 + PAT type encoding; byte n of an entry is the effective type for EPT type
    // encoding n. Built once from Table, so an access pays one load and a shift, no branch.
    private static readonly ulong[] ByPat = BuildByPat();

    /// <summary>CR0.CD is always 0 here: IPAT = 1 gives the EPT type, else Table 11-7 of (EPT type, PAT type).</summary>
    // Inlined: on every translated access, where the PAT type is often a constant (WB with paging off).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static MemoryType Effective(MemoryType ept, bool ignorePat, MemoryType pat)
    {
        // IPAT [3], PAT type [2:0]: below 16, the length of ByPat, so the read goes unchecked
        // (a bounds check and a select were a tenth of writing a translated result).
        nuint index = (((nuint)Unsafe.BitCast<bool, byte>(ignorePat) & 1) << 3) | ((nuint)pat & 7);
        return (MemoryType)(byte)(Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(ByPat), index) >> (8 * ((int)ept & 7)));
    }

    private static ulong[] BuildByPat()
    {
        var byPat = new ulong[16];
        for (int pat = 0; pat < 8; pat++)
        {
            for (int ept = 0; ept < 8; ept++)
            {
                byPat[pat] |= (ulong)Combine((MemoryType)ept, (MemoryType)pat) << (8 * ept);
                byPat[8 + pat] |= (ulong)ept << (8 * ept);
            }
        }

        return byPat;
    }

    private static MemoryType Combine(MemoryType ept, MemoryType pat)
    {
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

using EptFuzz.Contract;

namespace EptFuzz.Targets.External;

/// <summary>
/// The few EPT facts the harness needs to run raw steps on a target's tables (it never interprets
/// them further: that is the reference model's job). See: "EPT Translation Mechanism" (§29.3.2).
/// </summary>
internal static class EptGeometry
{
    /// <summary>[51:12] the physical address of the next table or the page.</summary>
    public const ulong AddressMask = EptAddress.Mask;

    /// <summary>Bit 7 of a PDE or PDPTE: the entry maps a page.</summary>
    public const ulong LargePage = 1UL << 7;

    /// <summary>An entry is present when any of bits 2:0 is set, or bit 10 under the MBEC control.</summary>
    public static bool IsPresent(ulong entry, bool mbec) => (entry & 0b111) != 0 || (mbec && (entry & (1UL << 10)) != 0);

    /// <summary>The address of the entry that translates <paramref name="gpa"/> in the table at <paramref name="table"/>.</summary>
    public static ulong EntryAddress(ulong table, ulong gpa, EptLevel level) => table + ((ulong)level.Index(gpa) << 3);
}

namespace EptFuzz.Reference;

/// <summary>
/// The EPT pointer (VMCS field 0000201AH).
/// See: "Extended-Page-Table Pointer (EPTP)" (§24.6.11, Table 24-8; newer Table 25-9), EPTP-1.
/// </summary>
public readonly record struct Eptp(ulong Raw)
{
    // [2:0] memory type for EPT paging-structure accesses: 0 = UC, 6 = WB
    public byte MemoryType => (byte)(Raw & 7);

    // [5:3] EPT page-walk length minus 1
    public int PageWalkLengthMinus1 => (int)((Raw >> 3) & 7);

    // [6] enable accessed and dirty flags for EPT
    public bool AccessedDirtyEnabled => Bits.Test(Raw, 6);

    // [7] enable supervisor shadow-stack control (newer; reserved in the 2016 edition)
    public bool SupervisorShadowStackEnabled => Bits.Test(Raw, 7);

    // [11:8] reserved
    public ulong ReservedLow => Raw & Bits.Range(11, 8);

    // [N-1:12] physical address of the root table (PML4, or PML5 with a 5-level walk)
    public Hpa Root => new(Raw & EptEntryFormat.AddressBits);

    /// <summary>The walk length the pointer selects: 4 or 5 levels, or 0 when bits 5:3 encode neither.</summary>
    public int Levels => PageWalkLengthMinus1 switch
    {
        3 => 4,
        4 => 5,
        _ => 0,
    };

    public static Eptp Create(Hpa root, byte memoryType = 6, int levels = 4, bool accessedDirty = false) =>
        new(root.Value | memoryType | ((ulong)(levels - 1) << 3) | (accessedDirty ? 1UL << 6 : 0));
}

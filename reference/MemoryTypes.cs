namespace EptFuzz.Reference;

/// <summary>Memory types by their architectural encoding. 2 and 3 are reserved everywhere; 7 is UC- in the PAT and reserved in EPT.</summary>
public enum MemoryType : byte
{
    UC = 0,
    WC = 1,
    WT = 4,
    WP = 5,
    WB = 6,
    UCMinus = 7,
}

/// <summary>The memory type of a translated guest-physical access.</summary>
public static class MemoryTyping
{
    /// <summary>
    /// See: "Memory Type Used for Translated Guest-Physical Addresses" (§28.2.6.2), EPT-MT-3:
    /// the EPT memory type is bits 5:3 of the leaf; 0, 1, 4, 5 and 6 are the valid encodings
    /// (2, 3 and 7 make the leaf misconfigured, EPT-MISCONFIG-5).
    /// </summary>
    public static bool IsValidEptType(byte type) => type is 0 or 1 or 4 or 5 or 6;

    /// <summary>
    /// See: "Memory Type Used for Translated Guest-Physical Addresses" (§28.2.6.2), EPT-MT-2: with
    /// paging on, the PAT type is the IA32_PAT entry that the leaf's PAT, PCD and PWT bits select
    /// (index = PAT·4 + PCD·2 + PWT). An entry holding a reserved encoding (2 or 3) cannot be loaded
    /// into IA32_PAT (WRMSR faults); the model reads such a value as UC, the strongest type.
    /// </summary>
    public static MemoryType PatEntry(ulong pat, int index)
    {
        byte type = (byte)((pat >> (8 * index)) & 7);
        return type is 2 or 3 ? MemoryType.UC : (MemoryType)type;
    }

    /// <summary>
    /// See: "Selecting Memory Types for Pentium Pro and More Recent Processor Families" (Vol 3A
    /// §11.5.2.2, Table 11-7), EPT-MT-5: the EPT memory type takes the MTRR type's place. Rows are
    /// the EPT type, columns the PAT type. The cells marked "formerly undefined" in the SDM are taken
    /// as the table gives them: (WT, WP) = WP and (WP, UC-) = WC. Bochs gives WT and UC there; the
    /// model follows the SDM (ept-rules.md §18 item 10).
    /// </summary>
    public static MemoryType Combine(MemoryType ept, MemoryType pat) => (ept, pat) switch
    {
        // A UC PAT type always wins.
        (_, MemoryType.UC) => MemoryType.UC,
        // A WC PAT type gives WC whatever the EPT type.
        (_, MemoryType.WC) => MemoryType.WC,
        (MemoryType.UC, _) => MemoryType.UC,
        (MemoryType.WC, MemoryType.UCMinus or MemoryType.WB) => MemoryType.WC,
        (MemoryType.WC, _) => MemoryType.UC,
        (MemoryType.WT, MemoryType.UCMinus) => MemoryType.UC,
        (MemoryType.WT, MemoryType.WT or MemoryType.WB) => MemoryType.WT,
        (MemoryType.WT, _) => MemoryType.WP,
        (MemoryType.WP, MemoryType.UCMinus) => MemoryType.WC,
        (MemoryType.WP, MemoryType.WT) => MemoryType.WT,
        (MemoryType.WP, _) => MemoryType.WP,
        (MemoryType.WB, MemoryType.UCMinus) => MemoryType.UC,
        (MemoryType.WB, _) => pat,
        _ => throw new ArgumentOutOfRangeException(nameof(ept), ept, "not a valid EPT memory type"),
    };
}

namespace EptFuzz.Reference;

/// <summary>The access rights an EPT entry (or a whole walk, ANDed) grants.</summary>
[Flags]
public enum EptPermissions : byte
{
    None = 0,
    /// <summary>Entry bit 0.</summary>
    ReadAccess = 1,
    /// <summary>Entry bit 1.</summary>
    WriteAccess = 2,
    /// <summary>Entry bit 2: execute (supervisor-mode execute when MBEC is on).</summary>
    ExecuteAccess = 4,
    /// <summary>Entry bit 10: user-mode execute (only when MBEC is on).</summary>
    UserModeExecute = 8,
    All = ReadAccess | WriteAccess | ExecuteAccess | UserModeExecute,
}

/// <summary>
/// One 64-bit EPT paging-structure entry, any level. Field names are the SDM's. Which bits mean
/// something depends on the level and on bit 7; see the EPT-ENTRY rules in <see cref="EptEntryFormat"/>.
/// </summary>
public readonly record struct EptEntry(ulong Raw)
{
    // [0] read access
    public bool ReadAccess => Bits.Test(Raw, 0);

    // [1] write access
    public bool WriteAccess => Bits.Test(Raw, 1);

    // [2] execute access (supervisor-mode execute under MBEC)
    public bool ExecuteAccess => Bits.Test(Raw, 2);

    // [5:3] EPT memory type (leaves only; reserved in non-leaf entries)
    public byte MemoryType => (byte)((Raw >> 3) & 7);

    // [6] ignore PAT memory type (leaves only)
    public bool IgnorePat => Bits.Test(Raw, 6);

    // [7] maps a page (PDPTE, PDE); reserved in PML5E/PML4E; ignored in a PTE
    public bool LargePage => Bits.Test(Raw, 7);

    // [8] accessed (when EPTP[6] = 1)
    public bool Accessed => Bits.Test(Raw, 8);

    // [9] dirty (leaves, when EPTP[6] = 1)
    public bool Dirty => Bits.Test(Raw, 9);

    // [10] user-mode execute (when MBEC = 1)
    public bool UserModeExecute => Bits.Test(Raw, 10);

    // [60] supervisor shadow stack (leaves, when EPTP[7] = 1)
    public bool SupervisorShadowStack => Bits.Test(Raw, 60);

    // [63] suppress #VE
    public bool SuppressVe => Bits.Test(Raw, 63);

    // [51:12] physical address of the next table or the page (low bits of a large page reserved)
    public ulong Address => Raw & EptEntryFormat.AddressBits;

    public const int AccessedBit = 8;
    public const int DirtyBit = 9;

    /// <summary>Bits 0, 1, 2 and 10 as <see cref="EptPermissions"/> (bit 10 whatever MBEC says; callers mask it).</summary>
    public EptPermissions Permissions =>
        (EptPermissions)(Raw & 7) | (UserModeExecute ? EptPermissions.UserModeExecute : EptPermissions.None);
}

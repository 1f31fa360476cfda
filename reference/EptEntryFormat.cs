namespace EptFuzz.Reference;

/// <summary>Why a present EPT entry is misconfigured; one entry can have several causes.</summary>
[Flags]
public enum MisconfigCauses : byte
{
    None = 0,
    /// <summary>EPT-MISCONFIG-1: R = 0 and W = 1.</summary>
    WriteWithoutRead = 1,
    /// <summary>EPT-MISCONFIG-2: R = 0, X = 1, no execute-only support.</summary>
    ExecuteOnlyUnsupported = 2,
    /// <summary>EPT-MISCONFIG-3: MBEC, R = 0, XU = 1, no execute-only support.</summary>
    UserExecuteOnlyUnsupported = 4,
    /// <summary>EPT-MISCONFIG-4: a reserved bit below bit 12, bit 7 where that page size is unsupported, or a large page's low address bits.</summary>
    ReservedBit = 8,
    /// <summary>EPT-MISCONFIG-5: a leaf's memory type is 2, 3 or 7.</summary>
    InvalidMemoryType = 16,
    /// <summary>EPT-MISCONFIG-6: a physical-address bit at or above MAXPHYADDR (bits 51:N).</summary>
    AddressAboveMaxPhyAddr = 32,
}

/// <summary>
/// The EPT entry formats: what makes an entry present, a leaf, or misconfigured, and which bits
/// are ignored, at each level. See: "EPT Translation Mechanism" (§28.2.2, Tables 28-1 … 28-6) and
/// "EPT Misconfigurations" (§28.2.3.1).
/// </summary>
public static class EptEntryFormat
{
    // [51:12] the physical-address field of every entry (low bits of large pages are reserved there).
    public const ulong AddressBits = 0x000F_FFFF_FFFF_F000;

    /// <summary>
    /// See: "EPT Translation Mechanism" (§28.2.2), EPT-PRESENT-1: an entry is not present when bits
    /// 2:0 are all 0 and, with MBEC on, bit 10 is 0 too. Without MBEC bit 10 is ignored.
    /// </summary>
    public static bool IsPresent(EptEntry entry, bool mbec) => (entry.Raw & 7) != 0 || (mbec && entry.UserModeExecute);

    /// <summary>
    /// EPT-LARGE-1 / EPT-ENTRY-3/4/5: a PTE always maps a page; a PDPTE or PDE maps one when its
    /// bit 7 is 1 (whether that size is supported is a misconfiguration question); bit 7 of a
    /// PML4E or PML5E is reserved, never a page.
    /// </summary>
    public static bool IsLeaf(EptEntry entry, Level level) =>
        level == Level.Pte || (level is Level.Pde or Level.Pdpte && entry.LargePage);

    /// <summary>
    /// Every misconfiguration cause of a present entry at this level.
    /// See: "EPT Misconfigurations" (§28.2.3.1; newer §x.3.3.1), EPT-MISCONFIG-1 … 6.
    /// </summary>
    public static MisconfigCauses Misconfigurations(EptEntry entry, Level level, ProcessorCapabilities capabilities, bool mbec)
    {
        var causes = MisconfigCauses.None;

        // EPT-MISCONFIG-1: bit 0 (read) clear with bit 1 (write) set, whatever the processor.
        if (!entry.ReadAccess && entry.WriteAccess)
        {
            causes |= MisconfigCauses.WriteWithoutRead;
        }

        // EPT-MISCONFIG-2: bit 0 clear with bit 2 set, on a processor without execute-only
        // translations (CAP[0] = 0).
        if (!entry.ReadAccess && entry.ExecuteAccess && !capabilities.ExecuteOnly)
        {
            causes |= MisconfigCauses.ExecuteOnlyUnsupported;
        }

        // EPT-MISCONFIG-3: with MBEC, bit 0 clear with bit 10 (user-mode execute) set, on a
        // processor without execute-only translations.
        if (mbec && !entry.ReadAccess && entry.UserModeExecute && !capabilities.ExecuteOnly)
        {
            causes |= MisconfigCauses.UserExecuteOnlyUnsupported;
        }

        // EPT-MISCONFIG-4: a reserved bit is set (EPT-ENTRY-1 … 5).
        if ((entry.Raw & ReservedBits(entry, level, capabilities)) != 0)
        {
            causes |= MisconfigCauses.ReservedBit;
        }

        // EPT-MISCONFIG-6: physical-address bits 51:N are reserved in every entry.
        if ((entry.Raw & Bits.AboveMaxPhyAddr(capabilities.MaxPhysicalAddressWidth)) != 0)
        {
            causes |= MisconfigCauses.AddressAboveMaxPhyAddr;
        }

        // EPT-MISCONFIG-5: the entry maps a page and its memory type (bits 5:3) is 2, 3 or 7. An
        // entry that asks for a page size the processor lacks is no leaf (bit 7 is reserved there).
        if (IsSupportedLeaf(entry, level, capabilities) && !MemoryTyping.IsValidEptType(entry.MemoryType))
        {
            causes |= MisconfigCauses.InvalidMemoryType;
        }

        return causes;
    }

    /// <summary>
    /// Reserved bits of a present entry below bit 52, other than 51:N (those are
    /// <see cref="MisconfigCauses.AddressAboveMaxPhyAddr"/>).
    /// </summary>
    public static ulong ReservedBits(EptEntry entry, Level level, ProcessorCapabilities capabilities)
    {
        switch (level)
        {
            // EPT-ENTRY-1: a PML5E or PML4E references a table; bits 7:3 are reserved.
            case Level.Pml5e or Level.Pml4e:
                return Bits.Range(7, 3);

            // EPT-LARGE-1 / EPT-MISCONFIG-4: bit 7 of a PDPTE needs 1 GB support (CAP[17]).
            case Level.Pdpte when entry.LargePage && !capabilities.Pdpte1GPages:
                return 1UL << 7;

            // EPT-ENTRY-3: a PDPTE mapping a 1 GB page; bits 29:12 are reserved.
            case Level.Pdpte when entry.LargePage:
                return Bits.Range(29, 12);

            // EPT-LARGE-1 / EPT-MISCONFIG-4: bit 7 of a PDE needs 2 MB support (CAP[16]).
            case Level.Pde when entry.LargePage && !capabilities.Pde2MPages:
                return 1UL << 7;

            // EPT-ENTRY-4: a PDE mapping a 2 MB page; bits 20:12 are reserved.
            case Level.Pde when entry.LargePage:
                return Bits.Range(20, 12);

            // EPT-ENTRY-2: a PDPTE or PDE referencing a table; bits 6:3 are reserved.
            case Level.Pdpte or Level.Pde:
                return Bits.Range(6, 3);

            // EPT-ENTRY-5: a PTE has no reserved bits below the address field (bit 7 is ignored).
            default:
                return 0;
        }
    }

    /// <summary>
    /// Bits the processor ignores in a present entry at this level (software may use them,
    /// EPT-ENTRY-6): 11 always; 10 without MBEC; 8 and 9 without EPT A/D (9 is ignored in
    /// non-leaf entries anyway); 7 of a PTE; 63:52 of non-leaf entries; 62:52 of leaves except
    /// bit 60 when EPTP[7] gives it meaning. Bits 57, 58 and 61 belong to controls the model does
    /// not have (guest-paging verification, paging-write, SPP), so they are ignored as the SDM says
    /// they are when those controls are 0. Bit 63 of a leaf is "suppress #VE", not ignored.
    /// </summary>
    public static ulong IgnoredBits(EptEntry entry, Level level, ProcessorCapabilities capabilities, bool mbec, bool accessedDirty, bool supervisorShadowStack)
    {
        ulong ignored = 1UL << 11;
        if (!mbec)
        {
            ignored |= 1UL << 10;
        }

        bool leaf = IsSupportedLeaf(entry, level, capabilities);
        if (!accessedDirty)
        {
            ignored |= 1UL << EptEntry.AccessedBit;
        }

        if (!accessedDirty || !leaf)
        {
            ignored |= 1UL << EptEntry.DirtyBit;
        }

        if (level == Level.Pte)
        {
            ignored |= 1UL << 7;
        }

        if (leaf)
        {
            ignored |= Bits.Range(62, 52);
            if (supervisorShadowStack)
            {
                ignored &= ~(1UL << 60);
            }
        }
        else
        {
            ignored |= Bits.Range(63, 52);
        }

        return ignored;
    }

    /// <summary>A leaf of a page size this processor supports.</summary>
    public static bool IsSupportedLeaf(EptEntry entry, Level level, ProcessorCapabilities capabilities) => level switch
    {
        Level.Pte => true,
        Level.Pde => entry.LargePage && capabilities.Pde2MPages,
        Level.Pdpte => entry.LargePage && capabilities.Pdpte1GPages,
        _ => false,
    };
}

using EptFuzz.Reference.Rules;

namespace EptFuzz.Reference;

// The guest's own 4-level page walk, every access of which goes through EPT.
internal sealed partial class Evaluator
{
    // Guest paging-structure entry bits (Vol 3A §4.5, Tables 4-15 … 4-20).
    private const int GuestPresent = 0;        // [0] P
    private const int GuestReadWrite = 1;      // [1] R/W
    private const int GuestUserSupervisor = 2; // [2] U/S
    private const int GuestPwt = 3;            // [3] PWT
    private const int GuestPcd = 4;            // [4] PCD
    private const int GuestAccessed = 5;       // [5] A
    private const int GuestDirty = 6;          // [6] D (leaves)
    private const int GuestPageSize = 7;       // [7] PS (PDPTE, PDE); PAT in a PTE
    private const int GuestLargePat = 12;      // [12] PAT of a 1 GB or 2 MB leaf
    private const int GuestExecuteDisable = 63; // [63] XD

    /// <summary>
    /// A linear access with 4-level guest paging. See: "Prioritization of EPT Misconfigurations and
    /// EPT Violations" (§28.2.3.3), EPT-ORDER-2: each guest entry's GPA is EPT-translated before the
    /// entry is examined; guest permissions are checked after the guest walk and before the final
    /// GPA is translated; then guest A/D flags are set; then the final GPA is EPT-translated.
    /// </summary>
    private AccessOutcome TranslateLinear()
    {
        ulong linear = access.Address;
        var gla = new Gla(linear);
        int n = capabilities.MaxPhysicalAddressWidth;
        bool write = access.Type == AccessType.Write;
        bool fetch = access.Type == AccessType.InstructionFetch;
        bool user = access.Cpl == 3;

        // See: "Page-Fault Exceptions" (Vol 3A §4.7): the error code's W/R, U/S and I/D bits
        // describe the access; I/D is set for fetches when NXE or SMEP is on.
        uint errorCode = (write ? GuestPageFault.WriteAccess : 0)
            | (user ? GuestPageFault.UserMode : 0)
            | (fetch && (guest.NoExecuteEnable || guest.Smep) ? GuestPageFault.InstructionFetch : 0);

        // Entries read, top-down: their host-physical addresses, guest-physical addresses and values.
        Span<Hpa> entryHpa = stackalloc Hpa[4];
        Span<ulong> entryGpa = stackalloc ulong[4];
        int count = 0;
        ulong leafValue = 0;
        var leafSize = PageSize.Size4K;
        bool userAll = true;
        bool writableAll = true;
        bool executeDisableAny = false;

        // [51:12] of CR3 locate the PML4 table.
        ulong table = guest.Cr3 & EptEntryFormat.AddressBits;
        for (var level = Level.Pml4e; ; level--)
        {
            var gpa = new Gpa(table | (LevelGeometry.Index(linear, level) * 8));

            // EPT-GWALK-1: reading the guest entry is a guest-physical access through EPT.
            Fire(RuleId.EptGwalk1);
            if (accessedDirty)
            {
                // EPT-AD-4: with EPT A/D on, the read counts as a write, so the EPT leaf mapping the
                // guest paging structure gets D as well as A.
                Fire(RuleId.EptAd4);
            }

            AccessOutcome? exit = TranslateGpa(GpaAccess.ForGuestEntryRead(gpa, gla, accessedDirty), out EptTranslation translation);
            if (exit is not null)
            {
                Fire(RuleId.EptOrder2);
                return exit;
            }

            ulong value = Read(translation.Hpa);
            walk.Add(new WalkStep(Structure.Guest, level, translation.Hpa, value, linear));
            entryHpa[count] = translation.Hpa;
            entryGpa[count] = gpa.Value;
            count++;

            // Vol 3A §4.7: a not-present entry faults with P = 0.
            if (!Bits.Test(value, GuestPresent))
            {
                Fire(RuleId.EptOrder2);
                return new GuestPageFault(errorCode);
            }

            // Vol 3A §4.7: a reserved bit faults with P = 1 and RSVD = 1.
            if ((value & GuestReservedBits(value, level, n)) != 0)
            {
                Fire(RuleId.EptOrder2);
                return new GuestPageFault(errorCode | GuestPageFault.Present | GuestPageFault.ReservedBit);
            }

            userAll &= Bits.Test(value, GuestUserSupervisor);
            writableAll &= Bits.Test(value, GuestReadWrite);
            executeDisableAny |= guest.NoExecuteEnable && Bits.Test(value, GuestExecuteDisable);

            if (level == Level.Pte || (level is Level.Pde or Level.Pdpte && Bits.Test(value, GuestPageSize)))
            {
                leafValue = value;
                leafSize = LevelGeometry.LeafSize(level);
                break;
            }

            table = value & Bits.Range(n - 1, 12);
        }

        // Vol 3A §4.6 "Access Rights": checked once the leaf is known; a #PF sets no A/D flags.
        if (!GuestPermits(userAll, writableAll, executeDisableAny))
        {
            Fire(RuleId.EptOrder2);
            return new GuestPageFault(errorCode | GuestPageFault.Present);
        }

        // EPT-GWALK-2: the guest's A flags (top-down, each entry that lacks it) and the leaf's D
        // on a write are set by a write to the entry: an EPT data write, which needs W.
        for (int i = 0; i < count; i++)
        {
            bool leaf = i == count - 1;
            ulong current = Read(entryHpa[i]);
            ulong flags = 1UL << GuestAccessed;
            if (leaf && write)
            {
                flags |= 1UL << GuestDirty;
            }

            if ((current & flags) == flags)
            {
                continue;
            }

            Fire(RuleId.EptGwalk2);
            AccessOutcome? exit = TranslateGpa(GpaAccess.ForGuestEntryUpdate(new Gpa(entryGpa[i]), gla), out EptTranslation translation);
            if (exit is not null)
            {
                return exit;
            }

            writes.Add(new PhysicalWrite(translation.Hpa, Read(translation.Hpa) | flags));
        }

        // The final guest-physical address: the leaf's page frame and the linear page offset.
        ulong offsetMask = LevelGeometry.OffsetMask(leafSize);
        var finalGpa = new Gpa((leafValue & Bits.Range(n - 1, 12) & ~offsetMask) | (linear & offsetMask));

        // See: "Exit Qualification for EPT Violations" (Table 27-7), EPT-EXITQ-1 bits 9-11, and
        // EPT-MBEC-3: the address is user-mode when U/S = 1 at every level.
        var request = GpaAccess.ForFinal(finalGpa, access.Type, gla, userAll, writableAll, executeDisableAny, capabilities.AdvancedExitInformation);
        return TranslateFinal(request, PatType(leafValue, leafSize));
    }

    /// <summary>
    /// Reserved bits of a present 4-level guest entry (Vol 3A §4.5): bits 51:N everywhere; bit 7 of a
    /// PML4E; bits 29:13 of a 1 GB PDPTE and 20:13 of a 2 MB PDE; bit 63 when IA32_EFER.NXE = 0.
    /// </summary>
    private ulong GuestReservedBits(ulong value, Level level, int n)
    {
        ulong reserved = Bits.AboveMaxPhyAddr(n);
        if (level == Level.Pml4e)
        {
            reserved |= 1UL << GuestPageSize;
        }
        else if (level == Level.Pdpte && Bits.Test(value, GuestPageSize))
        {
            reserved |= Bits.Range(29, 13);
        }
        else if (level == Level.Pde && Bits.Test(value, GuestPageSize))
        {
            reserved |= Bits.Range(20, 13);
        }

        if (!guest.NoExecuteEnable)
        {
            reserved |= 1UL << GuestExecuteDisable;
        }

        return reserved;
    }

    /// <summary>
    /// Vol 3A §4.6 "Access Rights" for 4-level paging: CPL 3 needs U/S = 1 at every level; a write
    /// needs R/W = 1 at every level (at CPL 0 only when CR0.WP = 1); with NXE, a fetch needs XD = 0
    /// at every level; with SMEP, a CPL-0 fetch from a user-mode address faults.
    /// </summary>
    private bool GuestPermits(bool userAll, bool writableAll, bool executeDisableAny)
    {
        bool user = access.Cpl == 3;
        if (user && !userAll)
        {
            return false;
        }

        return access.Type switch
        {
            AccessType.Write => writableAll || (!user && !guest.WriteProtect),
            AccessType.InstructionFetch => !executeDisableAny && !(guest.Smep && !user && userAll),
            _ => true,
        };
    }

    /// <summary>
    /// See: "Memory Type Used for Translated Guest-Physical Addresses" (§28.2.6.2), EPT-MT-2: the PAT
    /// type is the IA32_PAT entry selected by PAT·4 + PCD·2 + PWT of the guest leaf (PAT is bit 7
    /// of a PTE, bit 12 of a large leaf).
    /// </summary>
    private MemoryType PatType(ulong leaf, PageSize size)
    {
        int patBit = size == PageSize.Size4K ? GuestPageSize : GuestLargePat;
        int index = (Bits.Test(leaf, patBit) ? 4 : 0) | (Bits.Test(leaf, GuestPcd) ? 2 : 0) | (Bits.Test(leaf, GuestPwt) ? 1 : 0);
        return MemoryTyping.PatEntry(guest.Pat, index);
    }
}

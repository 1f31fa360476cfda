using System.Runtime.CompilerServices;
using EptFuzz.Contract;
using EptFuzz.Impl.Ept;

namespace EptFuzz.Impl.Cpu;

// The guest side: a 4-level (IA-32e) guest walk whose every entry access is itself a GPA access
// through EPT (EPT-ORDER-2, EPT-GWALK-1/2), then the final GPA (SEMANTICS.md, "gva probes").
public sealed partial class VirtualCpu
{
    private void LinearAccess(AccessKind kind, ulong linear, byte cpl)
    {
        GuestPaging paging = Paging;
        bool accessedDirty = AccessedDirtyOn;
        if (CachingEnabled && TryCombinedHit(kind, linear, cpl, paging, accessedDirty))
        {
            return;
        }

        int maxPhyAddr = cpu.MaxPhyAddr;
        ulong addressMask = GuestBits.AddressMask(maxPhyAddr);
        ulong reservedAddress = GuestBits.ReservedAddressBits(maxPhyAddr);

        // With EPT A/D on, guest paging-structure reads are EPT writes (EPT-VIOL-5): qualification bits 0 and 1.
        ulong entryNeed = accessedDirty ? EptBits.WriteAccess : EptBits.ReadAccess;
        ulong entryBits = accessedDirty ? 3UL : 1UL;

        GuestEntryAddresses entryGpas = default;
        GuestEntryAddresses entryHpas = default;
        ulong table = paging.Cr3.Value & addressMask;
        bool user = true, writable = true, executeDisable = false;
        ulong leaf = 0;
        int depth = 0;
        EptLevel level = EptLevel.Pml4e;
        for (; ; level--)
        {
            ulong entryGpa = LevelGeometry.EntryAddress(table, linear, level);
            var request = new GpaRequest(entryGpa, entryNeed, entryBits, accessedDirty, false, linear, 0);
            if (!TranslateGpa(request, out GpaTranslation entryTranslation))
            {
                return;
            }

            ulong value = ReadWalkEntry(entryTranslation.Hpa, 4 + (int)level);
            result.AddWalk(new WalkEntry(WalkStructure.Guest, level, new Hpa(entryTranslation.Hpa), value, linear));
            entryGpas[depth] = entryGpa;
            entryHpas[depth] = entryTranslation.Hpa;
            depth++;
            if ((value & GuestBits.Present) == 0)
            {
                PageFault(kind, cpl, paging, present: false, reserved: false);
                return;
            }

            bool isPage = level == EptLevel.Pte || (LevelGeometry.CanMapPage(level) && (value & GuestBits.PageSize) != 0);
            if (IsGuestReserved(value, level, isPage, paging.Nxe, reservedAddress))
            {
                PageFault(kind, cpl, paging, present: true, reserved: true);
                return;
            }

            user &= (value & GuestBits.UserSupervisor) != 0;
            writable &= (value & GuestBits.ReadWrite) != 0;
            executeDisable |= paging.Nxe && (value & GuestBits.ExecuteDisable) != 0;
            if (isPage)
            {
                leaf = value;
                break;
            }

            table = value & addressMask;
        }

        if (GuestDenies(kind, cpl, paging, user, writable, executeDisable))
        {
            PageFault(kind, cpl, paging, present: true, reserved: false);
            return;
        }

        // Guest A/D, top-down, one write per entry; each is an EPT data write (EPT-GWALK-2).
        for (int i = 0; i < depth; i++)
        {
            bool isLeaf = i == depth - 1;
            // Read again, not taken from the walk: an EPT A/D write of this walk may have changed it.
            ulong current = ReadWalkEntry(entryHpas[i], 4 + ((int)EptLevel.Pml4e - i));
            ulong updated = current | GuestBits.Accessed | (isLeaf && kind == AccessKind.Write ? GuestBits.Dirty : 0);
            if (updated == current)
            {
                continue;
            }

            var request = new GpaRequest(entryGpas[i], EptBits.WriteAccess, 3, true, false, linear, 0);
            if (!TranslateGpa(request, out GpaTranslation writeBack))
            {
                return;
            }

            memory.Write(new Hpa(writeBack.Hpa), updated);
            result.AddWrite(new MemoryWrite(new Hpa(writeBack.Hpa), updated));
            if (isLeaf)
            {
                leaf = updated;
            }
        }

        ulong pageSpan = LevelGeometry.Span(level);
        ulong finalGpa = (leaf & addressMask & ~(pageSpan - 1)) | (linear & (pageSpan - 1));
        ulong advanced = (user ? 1UL << 9 : 0) | (writable ? 1UL << 10 : 0) | (executeDisable ? 1UL << 11 : 0);
        var final = new GpaRequest(finalGpa, Need(kind, user), AccessBits(kind), kind == AccessKind.Write, true, linear, advanced);
        if (!TranslateGpa(final, out GpaTranslation translation))
        {
            return;
        }

        // PAT index = PAT*4 + PCD*2 + PWT of the leaf; PAT is bit 7 of a PTE, bit 12 of a page-mapping PDPTE/PDE.
        ulong patBit = level == EptLevel.Pte ? GuestBits.PageSize : GuestBits.LargePat;
        int patIndex = ((leaf & patBit) != 0 ? 4 : 0) | ((leaf & GuestBits.CacheDisable) != 0 ? 2 : 0) | ((leaf & GuestBits.WriteThrough) != 0 ? 1 : 0);
        MemoryType pat = MemoryTypes.PatEntry(paging.Pat, patIndex);
        Translated(translation, finalGpa, pat);

        if (CachingEnabled)
        {
            int sizeIndex = Math.Min((int)level, (int)translation.Level) - 1;
            ulong span = 1UL << (12 + 9 * sizeIndex);
            tlb.Insert(new CombinedMapping
            {
                Valid = true,
                Tag = Tag,
                PageNumber = linear >> (12 + 9 * sizeIndex),
                Shift = 12 + 9 * sizeIndex,
                GpaBase = finalGpa & ~(span - 1),
                HpaBase = translation.Hpa & ~(span - 1),
                EptLevel = translation.Level,
                Permissions = translation.Permissions,
                MemoryType = result.MemoryType,
                User = user,
                Writable = writable,
                ExecuteDisable = executeDisable,
                GuestDirty = (leaf & GuestBits.Dirty) != 0,
                EptDirty = translation.Dirty,
                AccessedDirty = accessedDirty,
                Mbec = Controls.Mbec,
            }, sizeIndex);
        }
    }

    /// <summary>Serves a linear access from a combined mapping when it would plainly succeed; anything else walks.</summary>
    private bool TryCombinedHit(AccessKind kind, ulong linear, byte cpl, GuestPaging paging, bool accessedDirty)
    {
        if (!tlb.TryGetCombined(Tag, linear, out CombinedMapping cached)
            || cached.AccessedDirty != accessedDirty || cached.Mbec != Controls.Mbec
            || GuestDenies(kind, cpl, paging, cached.User, cached.Writable, cached.ExecuteDisable))
        {
            return false;
        }

        ulong need = Need(kind, cached.User);
        if ((cached.Permissions & need) != need
            || (kind == AccessKind.Write && (!cached.GuestDirty || (accessedDirty && !cached.EptDirty))))
        {
            return false;
        }

        ulong offset = linear & ((1UL << cached.Shift) - 1);
        ulong visible = Controls.Mbec ? cached.Permissions : cached.Permissions & ~EptBits.UserModeExecute;
        result.Kind = OutcomeKind.Translated;
        result.Hpa = new Hpa(cached.HpaBase + offset);
        result.Gpa = new Gpa(cached.GpaBase + offset);
        result.PageSize = LevelGeometry.SizeOf(cached.EptLevel);
        result.Permissions = EptBits.Decode(visible);
        result.MemoryType = cached.MemoryType;
        result.FromCache = true;
        return true;
    }

    /// <summary>Vol 3A §4.6 access rights, for CPL 0 or 3.</summary>
    private static bool GuestDenies(AccessKind kind, byte cpl, GuestPaging paging, bool user, bool writable, bool executeDisable)
    {
        bool userMode = cpl == 3;
        return (userMode && !user)
            || (kind == AccessKind.Write && !writable && (userMode || paging.Wp))
            || (kind == AccessKind.Fetch && executeDisable)
            || (kind == AccessKind.Fetch && !userMode && paging.Smep && user);
    }

    // Inlined: a call per guest level showed in profiles of the guest walk.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsGuestReserved(ulong value, EptLevel level, bool isPage, bool nxe, ulong reservedAddress)
    {
        if ((value & reservedAddress) != 0 || (!nxe && (value & GuestBits.ExecuteDisable) != 0))
        {
            return true;
        }

        return level switch
        {
            EptLevel.Pml4e => (value & GuestBits.PageSize) != 0,
            // [29:13] of a 1 GiB page, [20:13] of a 2 MiB page (bit 12 is PAT).
            EptLevel.Pdpte => isPage && (value & 0x3FFF_E000UL) != 0,
            EptLevel.Pde => isPage && (value & 0x1F_E000UL) != 0,
            _ => false,
        };
    }

    /// <summary>A guest #PF: P(0) W/R(1) U/S(2) RSVD(3) I/D(4, fetch with NXE or SMEP). No guest A/D is set.</summary>
    private void PageFault(AccessKind kind, byte cpl, GuestPaging paging, bool present, bool reserved)
    {
        uint code = (present ? 1u : 0)
            | (kind == AccessKind.Write ? 2u : 0)
            | (cpl == 3 ? 4u : 0)
            | (reserved ? 8u : 0)
            | (kind == AccessKind.Fetch && (paging.Nxe || paging.Smep) ? 16u : 0);
        result.Kind = OutcomeKind.GuestPageFault;
        result.ErrorCode = code;
    }
}

using EptFuzz.Contract;
using EptFuzz.Targets.External.Hosting;

namespace EptFuzz.Targets.External;

/// <summary>
/// The guest's own 4-level page tables for an external target (the case format's <c>guest</c>,
/// <c>gmap</c>, <c>gedit</c>), built by the harness as a guest OS builds them: every word goes to
/// guest memory through the target's EPT (no permission checks, no A/D), wherever its tables map
/// the guest-physical page. A failed step writes nothing. See: "4-Level Paging" (§4.5).
/// </summary>
internal sealed class GuestTables(ExternalHost host, int maxPhyAddr, Action<ulong, ulong> write)
{
    // Table 4-14..4-20: bit 0 present, bit 1 read/write, bit 2 user/supervisor, bit 7 page size,
    // bit 63 execute-disable; [M-1:12] the next table or the page.
    private const ulong Present = 1, ReadWrite = 1 << 1, UserSupervisor = 1 << 2, PageSizeBit = 1 << 7, ExecuteDisable = 1UL << 63;

    private readonly Dictionary<ulong, ulong> pending = [];
    private ulong nextTable;
    private ulong tablesEnd;

    public GuestPaging Paging { get; private set; } = GuestPaging.Off;

    private ulong AddressMask => ((1UL << maxPhyAddr) - 1) & ~0xFFFUL;

    public ApiResult SetPaging(GuestPaging paging, Gpa tablesStart, Gpa tablesEnd, bool mbec)
    {
        if (!paging.Enabled)
        {
            Paging = paging;
            return ApiResult.Ok;
        }

        ulong cr3 = paging.Cr3.Value & AddressMask;
        if (tablesStart.Value > tablesEnd.Value || ((tablesStart.Value | tablesEnd.Value) & 0xFFF) != 0)
        {
            return ApiResult.Unaligned;
        }

        if (paging.Cr3.Value >= 1UL << maxPhyAddr || tablesEnd.Value > 1UL << maxPhyAddr)
        {
            return ApiResult.OutOfRange;
        }

        if (cr3 >= tablesStart.Value && cr3 < tablesEnd.Value)
        {
            // The table range must not contain the top-level table (case-format.md).
            return ApiResult.Duplicated;
        }

        if (Translate(cr3, mbec) is not ulong root)
        {
            return ApiResult.NotExist;
        }

        ClearPage(root);
        Commit();
        Paging = paging;
        nextTable = tablesStart.Value;
        this.tablesEnd = tablesEnd.Value;
        return ApiResult.Ok;
    }

    public ApiResult Map(Gva gva, Gpa gpa, ulong size, bool writable, bool user, bool executable, bool mbec)
    {
        int leafLevel = size switch { 1UL << 12 => 1, 1UL << 21 => 2, 1UL << 30 => 3, _ => 0 };
        if (!Paging.Enabled || leafLevel == 0)
        {
            return ApiResult.Unsupported;
        }

        if (((gva.Value | gpa.Value) & (size - 1)) != 0)
        {
            return ApiResult.Unaligned;
        }

        if (!IsCanonical(gva.Value) || gpa.Value >= 1UL << maxPhyAddr || size > (1UL << maxPhyAddr) - gpa.Value)
        {
            return ApiResult.OutOfRange;
        }

        ulong leaf = gpa.Value | Present | (writable ? ReadWrite : 0) | (user ? UserSupervisor : 0)
            | (leafLevel == 1 ? 0 : PageSizeBit) | (!executable && Paging.Nxe ? ExecuteDisable : 0);
        ulong savedNext = nextTable;
        var result = MapWalk(gva.Value, leafLevel, leaf, mbec);
        if (result != ApiResult.Ok)
        {
            nextTable = savedNext;
        }

        return Finish(result);
    }

    public ApiResult Edit(Gva gva, EptLevel level, ulong set, ulong clear, bool mbec)
    {
        if (!Paging.Enabled)
        {
            return ApiResult.Unsupported;
        }

        if (!IsCanonical(gva.Value))
        {
            return ApiResult.OutOfRange;
        }

        if (level > EptLevel.Pml4e)
        {
            return ApiResult.NotExist;
        }

        ulong table = Paging.Cr3.Value & AddressMask;
        for (int current = 4; ; current--)
        {
            if (Translate(EntryAddress(table, gva.Value, current), mbec) is not ulong entry)
            {
                return ApiResult.NotExist;
            }

            ulong value = host.Read(entry);
            if (current == (int)level)
            {
                Stage(entry, (value & ~clear) | set);
                return Finish(ApiResult.Ok);
            }

            // The same reach as a walk: a not-present entry or a page stops it above the level asked for.
            if ((value & Present) == 0 || (current is 2 or 3 && (value & PageSizeBit) != 0))
            {
                return ApiResult.NotExist;
            }

            table = value & AddressMask;
        }
    }

    private ApiResult MapWalk(ulong gva, int leafLevel, ulong leaf, bool mbec)
    {
        ulong table = Paging.Cr3.Value & AddressMask;
        for (int level = 4; ; level--)
        {
            if (Translate(EntryAddress(table, gva, level), mbec) is not ulong entry)
            {
                return ApiResult.NotExist;
            }

            ulong value = Staged(entry);
            if (level == leafLevel)
            {
                if ((value & Present) != 0)
                {
                    return ApiResult.Duplicated;
                }

                Stage(entry, leaf);
                return ApiResult.Ok;
            }

            if ((value & Present) == 0)
            {
                table = nextTable;
                if (table >= tablesEnd)
                {
                    return ApiResult.ResourceLimit;
                }

                if (Translate(table, mbec) is not ulong page)
                {
                    return ApiResult.NotExist;
                }

                nextTable += 0x1000;
                ClearPage(page);
                // Upper levels are present, writable and user with A clear, so the leaf decides.
                Stage(entry, table | Present | ReadWrite | UserSupervisor);
                continue;
            }

            if (level is 2 or 3 && (value & PageSizeBit) != 0)
            {
                return ApiResult.Duplicated;
            }

            table = value & AddressMask;
        }
    }

    /// <summary>
    /// Where the target's EPT maps a guest-physical address, as a software walk reads its tables
    /// (present: any of bits 2:0, or bit 10 under MBEC; a leaf at level 1 or bit 7 at levels 2-3);
    /// null when nothing maps it.
    /// </summary>
    private ulong? Translate(ulong gpa, bool mbec)
    {
        if (host.Eptp == 0)
        {
            return null;
        }

        ulong table = host.Eptp & EptGeometry.AddressMask;
        for (var level = (EptLevel)host.WalkLength; level >= EptLevel.Pte; level--)
        {
            ulong value = Staged(EptGeometry.EntryAddress(table, gpa, level));
            if (!EptGeometry.IsPresent(value, mbec))
            {
                return null;
            }

            if (level == EptLevel.Pte || (level is EptLevel.Pde or EptLevel.Pdpte && (value & EptGeometry.LargePage) != 0))
            {
                ulong span = level.Span();
                return (value & EptGeometry.AddressMask & ~(span - 1)) | (gpa & (span - 1));
            }

            table = value & EptGeometry.AddressMask;
        }

        return null;
    }

    // Guest 4-level paging indexes a linear address with the same 9 bits a level as EPT (§4.5).
    private static ulong EntryAddress(ulong table, ulong gva, int level) => EptGeometry.EntryAddress(table, gva, (EptLevel)level);

    /// <summary>Bits 63:47 all equal (48-bit linear addresses).</summary>
    private static bool IsCanonical(ulong gva) => (gva >> 47) is 0 or 0x1FFFF;

    private void ClearPage(ulong page)
    {
        for (ulong i = 0; i < 0x1000; i += 8)
        {
            Stage(page + i, 0);
        }
    }

    /// <summary>Reads through the words staged by this step.</summary>
    private ulong Staged(ulong hpa)
    {
        return pending.TryGetValue(hpa, out ulong value) ? value : host.Read(hpa);
    }

    private void Stage(ulong hpa, ulong value) => pending[hpa] = value;

    private ApiResult Finish(ApiResult result)
    {
        if (result == ApiResult.Ok)
        {
            Commit();
        }
        else
        {
            pending.Clear();
        }

        return result;
    }

    private void Commit()
    {
        foreach (var (hpa, value) in pending)
        {
            // A page cleared to zero that was zero already needs no write (most fresh table pages).
            if (host.Read(hpa) != value)
            {
                write(hpa, value);
            }
        }

        pending.Clear();
    }
}

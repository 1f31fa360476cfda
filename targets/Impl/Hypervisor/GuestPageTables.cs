using EptFuzz.Contract;
using EptFuzz.Impl.Cpu;
using EptFuzz.Impl.Ept;
using EptFuzz.Impl.Memory;

namespace EptFuzz.Impl.Hypervisor;

/// <summary>
/// The guest's own 4-level page tables, populated by the hypervisor (the case format's
/// <c>guest</c>, <c>gmap</c> and <c>gedit</c>): every write goes through the EPT to host memory,
/// without EPT permission checks and without setting A/D, as a hypervisor writing guest memory does.
/// </summary>
public sealed class GuestPageTables
{
    private readonly ExtendedPageTable ept;
    private readonly Transaction tx;
    private readonly List<HypervisorEffect> journal;
    private readonly int maxPhyAddr;
    private ulong tablesEnd;
    private ulong nextTable;

    public GuestPageTables(ExtendedPageTable ept, Transaction tx, List<HypervisorEffect> journal, int maxPhyAddr)
    {
        this.ept = ept;
        this.tx = tx;
        this.journal = journal;
        this.maxPhyAddr = maxPhyAddr;
    }

    public GuestPaging Paging { get; private set; } = GuestPaging.Off;

    public ApiResult SetPaging(GuestPaging paging, Gpa tablesStart, Gpa tablesEnd)
    {
        if (!paging.Enabled)
        {
            Paging = paging;
            return ApiResult.Ok;
        }

        ulong cr3 = paging.Cr3.Value & GuestBits.AddressMask(maxPhyAddr);
        if (tablesStart.Value > tablesEnd.Value || ((tablesStart.Value | tablesEnd.Value) & (LevelGeometry.PageBytes - 1)) != 0)
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

        if (!ept.TryTranslate(new Gpa(cr3), out Hpa root))
        {
            return ApiResult.NotExist;
        }

        tx.ClearPage(root.Value);

        Commit();
        Paging = paging;
        nextTable = tablesStart.Value;
        this.tablesEnd = tablesEnd.Value;
        return ApiResult.Ok;
    }

    public ApiResult Map(Gva gva, Gpa gpa, ulong size, bool writable, bool user, bool executable)
    {
        if (!Paging.Enabled || !LevelGeometry.TryPageSize(size, out PageSize pageSize))
        {
            return ApiResult.Unsupported;
        }

        if (((gva.Value | gpa.Value) & (size - 1)) != 0)
        {
            return ApiResult.Unaligned;
        }

        if (!GuestBits.IsCanonical(gva.Value) || gpa.Value >= 1UL << maxPhyAddr || size > (1UL << maxPhyAddr) - gpa.Value)
        {
            return ApiResult.OutOfRange;
        }

        EptLevel leafLevel = LevelGeometry.LeafLevel(pageSize);
        ulong leaf = gpa.Value | GuestBits.Present | (writable ? GuestBits.ReadWrite : 0) | (user ? GuestBits.UserSupervisor : 0)
            | (pageSize == PageSize.Size4K ? 0 : GuestBits.PageSize) | (!executable && Paging.Nxe ? GuestBits.ExecuteDisable : 0);
        ApiResult result = MapWalk(gva.Value, leafLevel, leaf);
        return Finish(result);
    }

    public ApiResult Edit(Gva gva, EptLevel level, ulong set, ulong clear)
    {
        if (!Paging.Enabled)
        {
            return ApiResult.Unsupported;
        }

        if (!GuestBits.IsCanonical(gva.Value))
        {
            return ApiResult.OutOfRange;
        }

        if (level > EptLevel.Pml4e)
        {
            return ApiResult.NotExist;
        }

        ulong table = Paging.Cr3.Value & GuestBits.AddressMask(maxPhyAddr);
        for (EptLevel current = EptLevel.Pml4e; ; current--)
        {
            ulong entryGpa = LevelGeometry.EntryAddress(table, gva.Value, current);
            if (!ept.TryTranslate(new Gpa(entryGpa), out Hpa entry))
            {
                return ApiResult.NotExist;
            }

            ulong value = tx.Read(entry.Value);
            if (current == level)
            {
                tx.Write(entry.Value, (value & ~clear) | set);
                return Finish(ApiResult.Ok);
            }

            // The same reach as a walk: a not-present entry or a page stops it above the level asked for.
            if ((value & GuestBits.Present) == 0 || (LevelGeometry.CanMapPage(current) && (value & GuestBits.PageSize) != 0))
            {
                return ApiResult.NotExist;
            }

            table = value & GuestBits.AddressMask(maxPhyAddr);
        }
    }

    private ApiResult MapWalk(ulong gva, EptLevel leafLevel, ulong leaf)
    {
        ulong table = Paging.Cr3.Value & GuestBits.AddressMask(maxPhyAddr);
        for (EptLevel level = EptLevel.Pml4e; ; level--)
        {
            ulong entryGpa = LevelGeometry.EntryAddress(table, gva, level);
            if (!ept.TryTranslate(new Gpa(entryGpa), out Hpa entry))
            {
                return ApiResult.NotExist;
            }

            ulong value = tx.Read(entry.Value);
            if (level == leafLevel)
            {
                if ((value & GuestBits.Present) != 0)
                {
                    return ApiResult.Duplicated;
                }

                tx.Write(entry.Value, leaf);
                return ApiResult.Ok;
            }

            if ((value & GuestBits.Present) == 0)
            {
                ApiResult taken = TakeTable(out table);
                if (taken != ApiResult.Ok)
                {
                    return taken;
                }

                // Upper levels are present, writable and user with A clear, so the leaf decides.
                tx.Write(entry.Value, table | GuestBits.Present | GuestBits.ReadWrite | GuestBits.UserSupervisor);
                continue;
            }

            if (LevelGeometry.CanMapPage(level) && (value & GuestBits.PageSize) != 0)
            {
                return ApiResult.Duplicated;
            }

            table = value & GuestBits.AddressMask(maxPhyAddr);
        }
    }

    /// <summary>The lowest unused page of the table range, zeroed.</summary>
    private ApiResult TakeTable(out ulong table)
    {
        table = nextTable;
        if (table >= tablesEnd)
        {
            return ApiResult.ResourceLimit;
        }

        if (!ept.TryTranslate(new Gpa(table), out Hpa page))
        {
            return ApiResult.NotExist;
        }

        nextTable += LevelGeometry.PageBytes;
        tx.OnRollback(() => nextTable -= LevelGeometry.PageBytes);
        tx.ClearPage(page.Value);

        return ApiResult.Ok;
    }

    private ApiResult Finish(ApiResult result)
    {
        if (result == ApiResult.Ok)
        {
            Commit();
        }
        else
        {
            tx.Rollback();
        }

        return result;
    }

    private void Commit() => tx.Commit(journal);
}

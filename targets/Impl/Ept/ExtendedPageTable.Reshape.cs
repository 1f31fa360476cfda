using EptFuzz.Contract;
using EptFuzz.Impl.Memory;

namespace EptFuzz.Impl.Ept;

// Range operations (unmap, protect, retype), split, merge, and the freeing of empty tables.
public sealed partial class ExtendedPageTable
{
    private enum RangeAction
    {
        Unmap,
        Protect,
        Retype,
    }

    public ApiResult Split(Gpa gpa)
    {
        if (gpa.Value >= GpaLimit)
        {
            return ApiResult.OutOfRange;
        }

        if (!TryFindLeaf(gpa, out EptLeaf leaf) || leaf.Level == EptLevel.Pte)
        {
            // Nothing mapped, or a 4 KiB page: there is no huge page containing the address.
            return ApiResult.NotExist;
        }

        if (leaf.Level == EptLevel.Pdpte && !cpu.Page2M)
        {
            // 512 pages "of the next smaller size" would be 2 MiB pages, which this processor lacks.
            return ApiResult.Unsupported;
        }

        return Run(() => SplitLeaf(leaf.EntryAddress.Value, leaf.Value, leaf.Level, out _) ? ApiResult.Ok : ApiResult.ResourceLimit);
    }

    public ApiResult Merge(Gpa gpa, ulong size)
    {
        ApiResult check = CheckPageSize(size, out PageSize pageSize);
        if (check == ApiResult.Ok && pageSize == PageSize.Size4K) check = ApiResult.Unsupported;
        if (check == ApiResult.Ok && (gpa.Value & (size - 1)) != 0) check = ApiResult.Unaligned;
        if (check == ApiResult.Ok && (gpa.Value >= GpaLimit || size > GpaLimit - gpa.Value)) check = ApiResult.OutOfRange;
        if (check != ApiResult.Ok)
        {
            return check;
        }

        EptLevel target = LevelGeometry.LeafLevel(pageSize);
        ulong table = Root;
        for (EptLevel level = TopLevel; ; level--)
        {
            ulong entry = LevelGeometry.EntryAddress(table, gpa.Value, level);
            ulong value = memory.Read(new Hpa(entry));
            Slot slot = Classify(entry, value, level, out ulong child);
            if (slot == Slot.Empty)
            {
                return ApiResult.NotExist;
            }

            if (slot != Slot.Table)
            {
                // Already one page of this size or larger, or an entry the hypervisor did not make.
                return ApiResult.NotMergeable;
            }

            if (level == target)
            {
                return TryMergeTable(entry, child, level);
            }

            table = child;
        }
    }

    /// <summary>The 512 entries of <paramref name="table"/> become one leaf in <paramref name="parentEntry"/> if they are contiguous pages with equal attributes.</summary>
    private ApiResult TryMergeTable(ulong parentEntry, ulong table, EptLevel parentLevel)
    {
        EptLevel childLevel = parentLevel - 1;
        ulong childSpan = LevelGeometry.Span(childLevel);
        ulong first = memory.Read(new Hpa(table));
        ulong baseHpa = first & LevelGeometry.LeafAddressMask(childLevel);
        // Accessed and dirty are the processor's history, not attributes; they do not block a merge.
        const ulong History = EptBits.Accessed | EptBits.Dirty;
        ulong attributes = first & ~EptBits.AddressMask & ~History;
        if ((baseHpa & (LevelGeometry.Span(parentLevel) - 1)) != 0)
        {
            return ApiResult.NotMergeable;
        }

        for (int i = 0; i < LevelGeometry.EntriesPerTable; i++)
        {
            ulong entry = table + ((ulong)i << 3);
            ulong value = memory.Read(new Hpa(entry));
            if (Classify(entry, value, childLevel, out _) != Slot.Leaf
                || (value & LevelGeometry.LeafAddressMask(childLevel)) != baseHpa + ((ulong)i * childSpan)
                || (value & ~EptBits.AddressMask & ~History) != attributes)
            {
                return ApiResult.NotMergeable;
            }
        }

        return Run(() =>
        {
            tx.Write(parentEntry, (attributes & ~EptBits.LargePage) | baseHpa | EptBits.LargePage);
            for (int i = 0; i < LevelGeometry.EntriesPerTable; i++)
            {
                ForgetBlank(table + ((ulong)i << 3));
            }

            // The old table is unreachable now; its stale entries are zeroed when the pool hands it out again.
            pool.Free(table, tx);
            return ApiResult.Ok;
        });
    }

    /// <summary>Walks [start, end) page by page: fully covered leaves are changed, partly covered ones split first.</summary>
    private ApiResult ApplyRange(ulong start, ulong end, RangeAction action, ulong newBits)
    {
        var touched = new HashSet<ulong>();
        ulong cursor = start;
        ApiResult result = ApplyInTable(Root, TopLevel, start, end, ref cursor, action, newBits, touched);
        if (result != ApiResult.Ok)
        {
            return result;
        }

        FreeEmptyTables(touched);
        return ApiResult.Ok;
    }

    /// <summary>
    /// Goes through the entries of one table from <paramref name="cursor"/> until the range or the
    /// table ends, descending into tables below it, so a range of many pages reads each table's
    /// entries in turn instead of walking from the root for every page.
    /// </summary>
    private ApiResult ApplyInTable(ulong table, EptLevel level, ulong start, ulong end, ref ulong cursor, RangeAction action, ulong newBits, HashSet<ulong> touched)
    {
        ulong span = LevelGeometry.Span(level);
        ulong tableSpanMask = (span << 9) - 1;
        do
        {
            ulong entry = LevelGeometry.EntryAddress(table, cursor, level);
            ulong value = tx.Read(entry);
            Slot slot = Classify(entry, value, level, out ulong child);
            if (slot is Slot.Empty or Slot.Foreign)
            {
                return ApiResult.NotExist;
            }

            if (slot == Slot.Leaf)
            {
                ulong pageGpa = cursor & ~(span - 1);
                if (pageGpa >= start && end - pageGpa >= span)
                {
                    switch (action)
                    {
                        case RangeAction.Unmap:
                            ClearEntry(entry);
                            touched.Add(table);
                            break;
                        case RangeAction.Protect:
                            WriteLeaf(entry, (value & ~EptBits.PermissionMask) | newBits);
                            break;
                        default:
                            WriteLeaf(entry, (value & ~EptBits.TypeMask) | newBits);
                            break;
                    }

                    cursor = pageGpa + span;
                    continue;
                }

                // Part of a huge page: split it, keeping the attributes, and go on one level down.
                if (!SplitLeaf(entry, value, level, out child))
                {
                    return ApiResult.ResourceLimit;
                }
            }

            ApiResult below = ApplyInTable(child, level - 1, start, end, ref cursor, action, newBits, touched);
            if (below != ApiResult.Ok)
            {
                return below;
            }
        }
        while (cursor < end && (cursor & tableSpanMask) != 0);

        return ApiResult.Ok;
    }

    /// <summary>
    /// Replaces a huge leaf by a table of 512 pages of the next smaller size with the same
    /// attributes. Without 2 MiB support a 1 GiB page becomes 512 page tables of 4 KiB pages. The
    /// new table is filled before the pointer is swung, as a live hypervisor must.
    /// </summary>
    private bool SplitLeaf(ulong entry, ulong value, EptLevel level, out ulong table)
    {
        ulong attributes = value & ~EptBits.AddressMask & ~EptBits.LargePage;
        ulong baseHpa = value & LevelGeometry.LeafAddressMask(level);
        if (!BuildTable(level - 1, entry, attributes, baseHpa, out table))
        {
            return false;
        }

        tx.Write(entry, table | NonLeafBits);
        return true;
    }

    private bool BuildTable(EptLevel level, ulong parentEntry, ulong attributes, ulong baseHpa, out ulong table)
    {
        if (!pool.TryAllocate(level, parentEntry, tx, out table))
        {
            return false;
        }

        // The new table is composed here and written whole: one journaled page instead of 512
        // words (a 1 GiB page split into 4 KiB pages writes 512 tables).
        ulong[] entries = PageRecycler.RentForOverwrite();
        bool leaves = level != EptLevel.Pde || cpu.Page2M;
        ulong leafBits = level == EptLevel.Pte ? attributes : attributes | EptBits.LargePage;
        ulong span = LevelGeometry.Span(level);
        for (int i = 0; i < LevelGeometry.EntriesPerTable; i++)
        {
            ulong hpa = baseHpa + ((ulong)i * span);
            if (leaves)
            {
                entries[i] = leafBits | hpa;
            }
            else
            {
                // A 2 MiB range without 2 MiB pages: a page table of 4 KiB pages.
                if (!BuildTable(EptLevel.Pte, table + ((ulong)i << 3), attributes, hpa, out ulong pageTable))
                {
                    PageRecycler.Return(entries);
                    return false;
                }

                entries[i] = pageTable | NonLeafBits;
            }
        }

        bool journaled = tx.WriteZeroPage(table, entries);
        // No blank leaf is recorded inside a table the pool just handed out (a table is freed only
        // when empty, and a merge forgets its leaves), so only a leaf whose value is 0 is noted:
        // one with no attributes at all (a 4 KiB page, so no large-page bit either).
        for (int i = 0; leaves && leafBits == 0 && i < LevelGeometry.EntriesPerTable; i++)
        {
            if (entries[i] == 0)
            {
                NoteLeaf(table + ((ulong)i << 3), 0);
            }
        }

        if (!journaled)
        {
            PageRecycler.Return(entries);
        }

        return true;
    }

    /// <summary>Frees every touched table that is now empty, bottom-up, clearing its parent's pointer (which may empty the parent).</summary>
    private void FreeEmptyTables(HashSet<ulong> touched)
    {
        var byLevel = new List<ulong>[6];
        foreach (ulong table in touched)
        {
            if (pool.TryGetInfo(table, out TablePage info))
            {
                (byLevel[(int)info.Level] ??= []).Add(table);
            }
        }

        for (int level = 1; level <= 5; level++)
        {
            var tables = byLevel[level];
            if (tables is null)
            {
                continue;
            }

            tables.Sort();
            foreach (ulong table in tables)
            {
                // Assigned before the test, so that every mutation of the condition still compiles.
                TablePage info = default;
                if (table == Pml4 || table == Pml5 || !pool.TryGetInfo(table, out info) || !IsEmpty(table))
                {
                    continue;
                }

                ClearEntry(info.ParentEntry);
                pool.Free(table, tx);
                ulong parentTable = info.ParentEntry & ~(LevelGeometry.PageBytes - 1);
                if (level < 5 && !(byLevel[level + 1] ??= []).Contains(parentTable))
                {
                    byLevel[level + 1]!.Add(parentTable);
                }
            }
        }
    }

    private bool IsEmpty(ulong table)
    {
        // The whole table: every entry must be free.
        const ulong scanned = LevelGeometry.PageBytes;

        // One scan of the words first: most tables checked here still hold entries, and a table
        // of zeros is empty unless one of them is a blank leaf (a mapping whose entry is all zero).
        if (!tx.IsZeroRange(table, scanned))
        {
            return false;
        }

        for (ulong offset = 0; offset < scanned && blankLeaves.Count > 0; offset += 8)
        {
            if (blankLeaves.Contains(table + offset))
            {
                return false;
            }
        }

        return true;
    }
}

using EptFuzz.Contract;

namespace EptFuzz.Impl.Memory;

/// <summary>What the pool knows about a table page it handed out.</summary>
public readonly record struct TablePage(EptLevel Level, ulong ParentEntry);

/// <summary>
/// The frame allocator for EPT table pages: a window of host-physical pages at the top of the
/// address space (so guest memory maps, which start low, rarely alias it), handed out lowest
/// first and reused most-recently-freed first. The cap bounds simulated memory: a case that
/// needs more table pages gets <see cref="ApiResult.ResourceLimit"/> instead of exhausting the host.
/// </summary>
public sealed class TablePagePool
{
    /// <summary>Default cap: 65,536 pages = 256 MiB of tables, enough for 128 GiB mapped with 4 KiB pages.</summary>
    public const int DefaultCapacity = 1 << 16;

    private readonly Dictionary<ulong, TablePage> inUse = [];
    private readonly Stack<ulong> freed = new();
    private ulong bump;

    public TablePagePool(int maxPhyAddr, int capacity = DefaultCapacity)
    {
        if (maxPhyAddr is < 24 or > 52)
        {
            throw new ArgumentOutOfRangeException(nameof(maxPhyAddr), maxPhyAddr, "MAXPHYADDR must be within 24..52");
        }

        // At most the upper half of the physical address space, so a small MAXPHYADDR still leaves room for guests.
        ulong maxPages = 1UL << (maxPhyAddr - 13);
        Capacity = (int)Math.Min((ulong)Math.Max(capacity, 1), maxPages);
        Base = (1UL << maxPhyAddr) - ((ulong)Capacity << 12);
    }

    /// <summary>Host-physical address of the first page of the window.</summary>
    public ulong Base { get; }

    public int Capacity { get; }

    public int InUse => inUse.Count;

    public int Available => Capacity - InUse;

    public bool Contains(ulong page, EptLevel level) => inUse.TryGetValue(page, out TablePage info) && info.Level == level;

    public bool TryGetInfo(ulong page, out TablePage info) => inUse.TryGetValue(page, out info);

    /// <summary>Appends every page handed out and not freed (the table-accounting invariant's "held").</summary>
    public void AppendInUse(List<Hpa> into)
    {
        foreach (ulong page in inUse.Keys)
        {
            into.Add(new Hpa(page));
        }
    }

    /// <summary>Takes a page for a table at <paramref name="level"/>; its contents are zeroed through the transaction.</summary>
    public bool TryAllocate(EptLevel level, ulong parentEntry, Transaction tx, out ulong page)
    {
        bool fromBump = false;
        if (freed.Count > 0)
        {
            page = freed.Pop();
        }
        else if (bump < (ulong)Capacity)
        {
            page = Base + (bump << 12);
            bump++;
            fromBump = true;
        }
        else
        {
            page = 0;
            return false;
        }

        ulong taken = page;
        inUse.Add(taken, new TablePage(level, parentEntry));
        tx.OnRollback(() =>
        {
            inUse.Remove(taken);
            if (fromBump)
            {
                bump--;
            }
            else
            {
                freed.Push(taken);
            }
        });

        // A poke may have left data in a page that was never a table; hardware expects a clean table.
        tx.ClearPage(taken);

        return true;
    }

    /// <summary>Returns a table page; the caller has already cleared every entry and the parent's pointer.</summary>
    public void Free(ulong page, Transaction tx)
    {
        TablePage info = inUse[page];
        inUse.Remove(page);
        freed.Push(page);
        tx.OnRollback(() =>
        {
            freed.Pop();
            inUse.Add(page, info);
        });
    }
}

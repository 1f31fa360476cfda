using EptFuzz.Contract;
using EptFuzz.Impl.Memory;

namespace EptFuzz.Impl.Ept;

/// <summary>
/// The EPT of one guest, as a hypervisor keeps it: real 512-entry tables in host memory, taken from
/// a <see cref="TablePagePool"/>. Every operation validates first (precedence of case-format.md),
/// runs inside a <see cref="Transaction"/> so that a failure changes nothing, frees tables that
/// become empty, and INVEPTs (journaled) after it changed an entry that was live.
/// </summary>
public sealed partial class ExtendedPageTable
{
    private readonly CpuCapabilities cpu;
    private readonly SparseHostMemory memory;
    private readonly TablePagePool pool;
    private readonly List<HypervisorEffect> journal;
    private readonly Transaction tx;

    // Leaves that are mapped although their value is 0 (perm=none, UC, hpa 0, 4 KiB): without this
    // set they would be indistinguishable from free slots.
    private readonly HashSet<ulong> blankLeaves = [];
    // The undo of a blank-leaf change, kept once so that a rollback record allocates nothing.
    private readonly Action<ulong> markBlank;
    private readonly Action<ulong> unmarkBlank;

    public ExtendedPageTable(CpuCapabilities cpu, SparseHostMemory memory, List<HypervisorEffect> journal, int poolCapacity = TablePagePool.DefaultCapacity)
    {
        this.cpu = cpu;
        this.memory = memory;
        this.journal = journal;
        markBlank = entry => blankLeaves.Add(entry);
        unmarkBlank = entry => blankLeaves.Remove(entry);
        pool = new TablePagePool(cpu.MaxPhyAddr, poolCapacity);
        tx = new Transaction(memory);
        if (!pool.TryAllocate(EptLevel.Pml4e, 0, tx, out ulong pml4))
        {
            throw new InvalidOperationException("the table-page pool cannot hold the root table");
        }

        tx.Commit(this.journal);
        Pml4 = pml4;
    }

    /// <summary>The PML4 table: the root with 4-level walks, and entry 0's table with 5-level walks.</summary>
    public ulong Pml4 { get; }

    /// <summary>The PML5 table, allocated when a 5-level EPTP is first asked for; 0 before.</summary>
    public ulong Pml5 { get; private set; }

    public int WalkLength { get; private set; } = 4;

    public ulong Root => WalkLength == 5 ? Pml5 : Pml4;

    public EptLevel TopLevel => WalkLength == 5 ? EptLevel.Pml5e : EptLevel.Pml4e;

    public TablePagePool Pool => pool;

    /// <summary>The INVEPT a live change is followed by (single-context while the EPTP points at this root).</summary>
    public InveptType LiveChangeInvept { get; set; } = InveptType.SingleContext;

    /// <summary>Non-leaf entries grant every permission and carry no other bits, so the leaf alone decides.</summary>
    public ulong NonLeafBits => EptBits.ReadAccess | EptBits.WriteAccess | EptBits.ExecuteAccess | (cpu.Mbec ? EptBits.UserModeExecute : 0);

    /// <summary>GPAs at or above this are out of range: 2^48 with 4 levels; 2^52 (GPAs are below 2^52) with 5.</summary>
    public ulong GpaLimit => WalkLength == 5 ? 1UL << 52 : 1UL << 48;

    public ulong HpaLimit => 1UL << cpu.MaxPhyAddr;

    /// <summary>Switches between 4- and 5-level walks; the PML5's entry 0 points at the existing PML4, so mappings survive.</summary>
    public ApiResult UseWalkLength(int walkLength)
    {
        if (walkLength is not (4 or 5))
        {
            return ApiResult.Unsupported;
        }

        if (walkLength == 5 && Pml5 == 0)
        {
            if (!pool.TryAllocate(EptLevel.Pml5e, 0, tx, out ulong pml5))
            {
                tx.Rollback();
                return ApiResult.ResourceLimit;
            }

            tx.Write(pml5, Pml4 | NonLeafBits);
            tx.Commit(journal);
            Pml5 = pml5;
        }

        WalkLength = walkLength;
        return ApiResult.Ok;
    }

    /// <summary>The leaf that maps <paramref name="gpa"/>, or false (NotExist). Allocates nothing.</summary>
    public bool TryFindLeaf(Gpa gpa, out EptLeaf leaf)
    {
        leaf = default;
        if (gpa.Value >= GpaLimit)
        {
            return false;
        }

        ulong table = Root;
        for (EptLevel level = TopLevel; ; level--)
        {
            ulong entry = LevelGeometry.EntryAddress(table, gpa.Value, level);
            ulong value = memory.Read(new Hpa(entry));
            switch (Classify(entry, value, level, out ulong child))
            {
                case Slot.Leaf:
                    leaf = new EptLeaf(level, new Hpa(entry), value);
                    return true;
                case Slot.Table:
                    table = child;
                    break;
                default:
                    return false;
            }
        }
    }

    /// <summary>The leaf entry that maps <paramref name="gpa"/>: Ok, NotExist, or OutOfRange beyond the walk's reach.</summary>
    public ApiResult Walk(Gpa gpa, out EptLeaf leaf)
    {
        if (gpa.Value >= GpaLimit)
        {
            leaf = default;
            return ApiResult.OutOfRange;
        }

        return TryFindLeaf(gpa, out leaf) ? ApiResult.Ok : ApiResult.NotExist;
    }

    /// <summary>gpa → hpa by the hypervisor's own tables; permissions are not checked.</summary>
    public bool TryTranslate(Gpa gpa, out Hpa hpa)
    {
        if (TryFindLeaf(gpa, out EptLeaf leaf))
        {
            hpa = leaf.Translate(gpa);
            return true;
        }

        hpa = default;
        return false;
    }

    public ApiResult Map(Gpa gpa, Hpa hpa, ulong size, EptPermissions permissions, MemoryType memoryType, bool ignorePat)
    {
        ApiResult check = CheckPageSize(size, out PageSize pageSize);
        if (check == ApiResult.Ok) check = CheckPermissionsSupported(permissions);
        if (check == ApiResult.Ok && ((gpa.Value | hpa.Value) & (size - 1)) != 0) check = ApiResult.Unaligned;
        if (check == ApiResult.Ok && (gpa.Value >= GpaLimit || size > GpaLimit - gpa.Value || hpa.Value >= HpaLimit || size > HpaLimit - hpa.Value)) check = ApiResult.OutOfRange;
        if (check == ApiResult.Ok) check = CheckPermissionsValid(permissions);
        if (check == ApiResult.Ok) check = CheckMemoryType(memoryType);
        if (check != ApiResult.Ok)
        {
            return check;
        }

        ulong value = hpa.Value | EptBits.Encode(permissions) | EptBits.EncodeType(memoryType, ignorePat)
            | (pageSize == PageSize.Size4K ? 0 : EptBits.LargePage);
        return Run(() => MapOne(gpa.Value, LevelGeometry.LeafLevel(pageSize), value));
    }

    public ApiResult Unmap(Gpa gpa, ulong size)
    {
        ApiResult check = CheckRange(gpa, size);
        return check != ApiResult.Ok ? check : Run(() => ApplyRange(gpa.Value, gpa.Value + size, RangeAction.Unmap, 0));
    }

    public ApiResult Protect(Gpa gpa, ulong size, EptPermissions permissions)
    {
        ApiResult check = CheckPermissionsSupported(permissions);
        if (check == ApiResult.Ok) check = CheckRange(gpa, size);
        if (check == ApiResult.Ok) check = CheckPermissionsValid(permissions);
        return check != ApiResult.Ok ? check : Run(() => ApplyRange(gpa.Value, gpa.Value + size, RangeAction.Protect, EptBits.Encode(permissions)));
    }

    public ApiResult Retype(Gpa gpa, ulong size, MemoryType memoryType, bool ignorePat)
    {
        ApiResult check = CheckRange(gpa, size);
        if (check == ApiResult.Ok) check = CheckMemoryType(memoryType);
        return check != ApiResult.Ok ? check : Run(() => ApplyRange(gpa.Value, gpa.Value + size, RangeAction.Retype, EptBits.EncodeType(memoryType, ignorePat)));
    }

    /// <summary>Maps many pages as one operation (the identity map): all of them, or none.</summary>
    public ApiResult MapAll(IReadOnlyList<PlannedPage> pages)
    {
        return Run(() =>
        {
            foreach (PlannedPage page in pages)
            {
                ulong value = page.Hpa.Value | EptBits.Encode(page.Permissions) | EptBits.EncodeType(page.MemoryType, false)
                    | (page.Size == PageSize.Size4K ? 0 : EptBits.LargePage);
                ApiResult result = MapOne(page.Gpa.Value, LevelGeometry.LeafLevel(page.Size), value);
                if (result != ApiResult.Ok)
                {
                    return result;
                }
            }

            return ApiResult.Ok;
        });
    }

    /// <summary>Runs one operation: commit (with an INVEPT after live changes) on Ok, roll back otherwise.</summary>
    private ApiResult Run(Func<ApiResult> body)
    {
        ApiResult result = body();
        if (result != ApiResult.Ok)
        {
            tx.Rollback();
            return result;
        }

        if (tx.TouchedLiveEntry)
        {
            // Permissions, addresses or page sizes of present entries changed: cached translations must go (EPT-INVEPT-5).
            tx.AddInvept(LiveChangeInvept);
        }

        tx.Commit(journal);
        return ApiResult.Ok;
    }

    private ApiResult MapOne(ulong gpa, EptLevel leafLevel, ulong value)
    {
        ulong table = Root;
        for (EptLevel level = TopLevel; level > leafLevel; level--)
        {
            ulong entry = LevelGeometry.EntryAddress(table, gpa, level);
            ulong current = tx.Read(entry);
            switch (Classify(entry, current, level, out ulong child))
            {
                case Slot.Empty:
                    if (!pool.TryAllocate(level - 1, entry, tx, out child))
                    {
                        return ApiResult.ResourceLimit;
                    }

                    tx.Write(entry, child | NonLeafBits);
                    break;
                case Slot.Table:
                    break;
                default:
                    // A larger page (or an entry this hypervisor did not make) already covers the address.
                    return ApiResult.Duplicated;
            }

            table = child;
        }

        ulong leafEntry = LevelGeometry.EntryAddress(table, gpa, leafLevel);
        if (Classify(leafEntry, tx.Read(leafEntry), leafLevel, out _) != Slot.Empty)
        {
            return ApiResult.Duplicated;
        }

        WriteLeaf(leafEntry, value);
        return ApiResult.Ok;
    }

    private enum Slot
    {
        Empty,
        Leaf,
        Table,
        Foreign,
    }

    /// <summary>How the hypervisor sees an entry: free, a page it mapped, one of its tables, or something a raw edit made.</summary>
    private Slot Classify(ulong entry, ulong value, EptLevel level, out ulong child)
    {
        child = 0;
        if (value == 0)
        {
            return blankLeaves.Contains(entry) ? Slot.Leaf : Slot.Empty;
        }

        if (level == EptLevel.Pte || (LevelGeometry.CanMapPage(level) && (value & EptBits.LargePage) != 0))
        {
            return Slot.Leaf;
        }

        child = value & EptBits.AddressMask;
        if ((value & EptBits.LargePage) != 0)
        {
            return Slot.Foreign;
        }

        // The PML4 was the root before the PML5 existed; PML5 entry 0 owns it since.
        if (child == Pml4)
        {
            return level == EptLevel.Pml5e && entry == Pml5 ? Slot.Table : Slot.Foreign;
        }

        return pool.TryGetInfo(child, out TablePage info) && info.Level == level - 1 && info.ParentEntry == entry
            ? Slot.Table : Slot.Foreign;
    }

    private void WriteLeaf(ulong entry, ulong value)
    {
        tx.Write(entry, value);
        NoteLeaf(entry, value);
    }

    /// <summary>Keeps the set of blank (all-zero) leaves right after a leaf was written.</summary>
    private void NoteLeaf(ulong entry, ulong value)
    {
        if (value == 0)
        {
            if (blankLeaves.Add(entry))
            {
                tx.OnRollback(unmarkBlank, entry);
            }
        }
        else if (blankLeaves.Count > 0)
        {
            ForgetBlank(entry);
        }
    }

    private void ClearEntry(ulong entry)
    {
        tx.Write(entry, 0);
        ForgetBlank(entry);
    }

    private void ForgetBlank(ulong entry)
    {
        if (blankLeaves.Remove(entry))
        {
            tx.OnRollback(markBlank, entry);
        }
    }
}

using EptFuzz.Contract;
using EptFuzz.Impl.Ept;
using EptFuzz.Impl.Memory;

namespace EptFuzz.Impl.Hypervisor;

/// <summary>
/// The hypervisor under test ("impl"): its EPT API over its own host memory. Every host-memory
/// write and every INVEPT it performs is journaled in order and handed out by <see cref="DrainEffects"/>.
/// </summary>
public sealed class EptHypervisor : IEptHypervisor, IDisposable
{
    // Journals of disposed hypervisors on this thread, emptied: a fuzzing worker builds one
    // hypervisor per case, and a journal grows to the largest operation's effects.
    [ThreadStatic]
    private static Stack<List<HypervisorEffect>>? freeJournals;

    private readonly List<HypervisorEffect> journal = freeJournals is { Count: > 0 } free ? free.Pop() : [];
    // The words of the page effects the last DrainEffects handed out, recycled at the next one.
    private readonly List<ulong[]> handedOutPages = [];
    private readonly int poolCapacity;
    private State? state;

    /// <param name="poolCapacity">Table pages the pool may hand out (see <see cref="TablePagePool.DefaultCapacity"/>).</param>
    public EptHypervisor(int poolCapacity = TablePagePool.DefaultCapacity)
    {
        this.poolCapacity = poolCapacity;
    }

    public string Name => "impl";

    public ulong Eptp { get; private set; }

    public VmxControls Controls { get; private set; }

    public GuestPaging GuestPaging => S.Guest.Paging;

    public IHostMemoryImage Memory => S.Memory;

    /// <summary>The EPT itself, for callers that use this hypervisor as a library (tests, a hypervisor author).</summary>
    public ExtendedPageTable Ept => S.Ept;

    public CpuCapabilities Cpu => S.Cpu;

    private bool disposed;

    private State S => state ?? throw (disposed ? new ObjectDisposedException(nameof(EptHypervisor)) : new InvalidOperationException("Configure must be called first"));

    public ApiResult Configure(CpuCapabilities cpu)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (state is not null)
        {
            throw new InvalidOperationException("Configure is called once");
        }

        if (cpu.MaxPhyAddr is < 24 or > 52)
        {
            return ApiResult.Unsupported;
        }

        var memory = new SparseHostMemory();
        var ept = new ExtendedPageTable(cpu, memory, journal, poolCapacity);
        var tx = new Transaction(memory);
        state = new State(cpu, memory, ept, tx, new GuestPageTables(ept, tx, journal, cpu.MaxPhyAddr), new MemoryMap());
        // Until the case says otherwise the EPTP is the case format's default: WB, 4 levels, no A/D.
        return SetEptp(new EptpRequest());
    }

    public ApiResult SetEptp(EptpRequest request)
    {
        State s = S;
        if (request.Raw is ulong raw)
        {
            // All 64 bits as given; the operations keep building the hypervisor's own tables.
            Eptp = raw;
        }
        else
        {
            ApiResult result = s.Ept.UseWalkLength(request.WalkLength);
            if (result != ApiResult.Ok)
            {
                return result;
            }

            // [2:0] memory type, [5:3] walk length - 1, [6] A/D enable, [51:12] root
            Eptp = s.Ept.Root | ((ulong)request.MemoryType & 7) | ((ulong)(request.WalkLength - 1) << 3)
                | (request.AccessedDirty ? 1UL << 6 : 0);
        }

        // A single-context INVEPT only reaches translations tagged with the current EPTP's root.
        // Once a PML5 wraps the PML4, the same tables are reachable from two roots (a 4-level and
        // a 5-level EPTP), and translations cached under the other one must go too: global.
        s.Ept.LiveChangeInvept = (Eptp & EptBits.AddressMask) == s.Ept.Root && s.Ept.Pml5 == 0 ? InveptType.SingleContext : InveptType.Global;
        return ApiResult.Ok;
    }

    public ApiResult SetControls(VmxControls controls)
    {
        Controls = controls;
        return ApiResult.Ok;
    }

    public ApiResult Map(Gpa gpa, Hpa hpa, ulong size, EptPermissions permissions, MemoryType memoryType, bool ignorePat) =>
        S.Ept.Map(gpa, hpa, size, permissions, memoryType, ignorePat);

    public ApiResult Unmap(Gpa gpa, ulong size) => S.Ept.Unmap(gpa, size);

    public ApiResult Protect(Gpa gpa, ulong size, EptPermissions permissions) => S.Ept.Protect(gpa, size, permissions);

    public ApiResult Retype(Gpa gpa, ulong size, MemoryType memoryType, bool ignorePat) => S.Ept.Retype(gpa, size, memoryType, ignorePat);

    public ApiResult Split(Gpa gpa) => S.Ept.Split(gpa);

    public ApiResult Merge(Gpa gpa, ulong size) => S.Ept.Merge(gpa, size);

    public ApiResult AddMemoryRange(Gpa start, Gpa end, MemoryType memoryType) => S.Map.Add(start, end, memoryType, S.Ept.GpaLimit);

    public ApiResult IdentityMap(ulong offset, Gpa offsetFrom)
    {
        State s = S;
        var plan = new List<PlannedPage>();
        ApiResult result = s.Map.Plan(offset, offsetFrom, s.Cpu, s.Ept.HpaLimit, s.Ept.Pool.Available, plan);
        return result != ApiResult.Ok ? result : s.Ept.MapAll(plan);
    }

    public ApiResult Invept(InveptType type)
    {
        _ = S;
        if (type is not (InveptType.SingleContext or InveptType.Global))
        {
            return ApiResult.Unsupported;
        }

        journal.Add(HypervisorEffect.Of(type));
        return ApiResult.Ok;
    }

    public ApiResult Edit(Gpa gpa, EptLevel level, ulong set, ulong clear, Hpa? leafHpa)
    {
        State s = S;
        if (leafHpa is Hpa target && (target.Value & (LevelGeometry.PageBytes - 1)) != 0)
        {
            return ApiResult.Unaligned;
        }

        if (gpa.Value >= 1UL << 52 || (leafHpa is Hpa high && high.Value >= 1UL << 52))
        {
            return ApiResult.OutOfRange;
        }

        if (level > s.Ept.TopLevel)
        {
            return ApiResult.NotExist;
        }

        // The reach of an entry probe (SEMANTICS.md): stop at a not-present entry or a page above the level.
        ulong table = s.Ept.Root;
        for (EptLevel current = s.Ept.TopLevel; current > level; current--)
        {
            ulong value = s.Memory.Read(new Hpa(LevelGeometry.EntryAddress(table, gpa.Value, current)));
            if (!EptBits.IsPresent(value, Controls.Mbec) || (LevelGeometry.CanMapPage(current) && (value & EptBits.LargePage) != 0))
            {
                return ApiResult.NotExist;
            }

            table = value & EptBits.AddressMask;
        }

        ulong entry = LevelGeometry.EntryAddress(table, gpa.Value, level);
        ulong edited = s.Memory.Read(new Hpa(entry));
        if (leafHpa is Hpa page)
        {
            edited = (edited & ~EptBits.AddressMask) | page.Value | EptBits.LargePage;
        }

        edited = (edited & ~clear) | set;
        // A raw edit is a plain memory write: no INVEPT, so a stale translation may survive it.
        s.Tx.Write(entry, edited);
        s.Tx.Commit(journal);
        return ApiResult.Ok;
    }

    public ApiResult Poke(Hpa hpa, ulong value)
    {
        State s = S;
        if ((hpa.Value & 7) != 0)
        {
            return ApiResult.Unaligned;
        }

        if (hpa.Value >= s.Ept.HpaLimit)
        {
            return ApiResult.OutOfRange;
        }

        s.Tx.Write(hpa.Value, value);
        s.Tx.Commit(journal);
        return ApiResult.Ok;
    }

    public ApiResult SetGuestPaging(GuestPaging paging, Gpa tablesStart, Gpa tablesEnd) => S.Guest.SetPaging(paging, tablesStart, tablesEnd);

    public ApiResult GMap(Gva gva, Gpa gpa, ulong size, bool writable, bool user, bool executable) =>
        S.Guest.Map(gva, gpa, size, writable, user, executable);

    public ApiResult GEdit(Gva gva, EptLevel level, ulong set, ulong clear) => S.Guest.Edit(gva, level, set, clear);

    /// <summary>The pool's pages in use, and the top of the tables: the PML5 once a 5-level EPTP was asked for (its entry 0 links the PML4), else the PML4.</summary>
    public bool ReportTablePages(List<Hpa> held, List<Hpa> roots)
    {
        ArgumentNullException.ThrowIfNull(held);
        ArgumentNullException.ThrowIfNull(roots);
        ExtendedPageTable ept = S.Ept;
        ept.Pool.AppendInUse(held);
        // EPTP form: [5:3] is the walk length minus one.
        roots.Add(ept.Pml5 != 0 ? new Hpa(ept.Pml5 | (4UL << 3)) : new Hpa(ept.Pml4 | (3UL << 3)));
        return true;
    }

    public int DrainEffects(List<HypervisorEffect> into)
    {
        // The words of the page effects handed out last time have been used by now (the contract
        // keeps them only until this call): the next tables are composed in them.
        RecycleHandedOutPages();
        int count = journal.Count;
        into.AddRange(journal);
        HandOutPages();
        journal.Clear();
        return count;
    }

    // The words of the journal's page effects, recycled at the next drain (or disposal).
    private void HandOutPages()
    {
        foreach (HypervisorEffect effect in journal)
        {
            if (effect.Words is { } words)
            {
                handedOutPages.Add(words);
            }
        }
    }

    private void RecycleHandedOutPages()
    {
        foreach (ulong[] words in handedOutPages)
        {
            PageRecycler.Return(words);
        }

        handedOutPages.Clear();
    }

    /// <summary>Gives the host memory's pages back for the next hypervisor on this thread; the hypervisor is unusable after.</summary>
    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        state?.Memory.Release();
        state = null;
        disposed = true;
        HandOutPages();
        RecycleHandedOutPages();
        journal.Clear();
        (freeJournals ??= new Stack<List<HypervisorEffect>>()).Push(journal);
    }

    private sealed record State(CpuCapabilities Cpu, SparseHostMemory Memory, ExtendedPageTable Ept, Transaction Tx, GuestPageTables Guest, MemoryMap Map);
}

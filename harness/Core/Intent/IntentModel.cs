using EptFuzz.Contract;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Intent;

/// <summary>
/// The abstract mapping state that a case's operations should have produced: which guest-physical
/// pages map where, with which permissions, memory type and page size. It decides each
/// operation's result from spec/case-format.md alone, with no page tables, so the implementation's
/// results and the reference model's translations can both be checked against it. Raw edits make
/// regions unknown; there only the exact comparisons between translators apply.
/// </summary>
public sealed class IntentModel
{
    /// <summary>
    /// Runs of pages ordered by guest-physical start; never overlapping. A list searched by halving:
    /// a case's operations leave at most a few hundred runs, so inserting in the middle is cheap,
    /// and a split or a range operation changes a few runs however many pages it makes.
    /// </summary>
    private readonly List<IntendedRun> runs = [];
    private readonly List<(ulong Start, ulong End)> unknown = [];
    private readonly List<(ulong Start, ulong End, MemoryType Type)> memoryMap = [];
    private readonly CpuCapabilities cpu;
    private int walkLength = 4;
    private bool allUnknown;

    public IntentModel(CpuCapabilities cpu) => this.cpu = cpu;

    public VmxControls Controls { get; set; }

    /// <summary>How many pages are intended (a run of n pages counts n).</summary>
    public int Count
    {
        get
        {
            ulong count = 0;
            foreach (var run in runs)
            {
                count += run.Count;
            }

            return (int)count;
        }
    }

    /// <summary>Every intended page, in address order.</summary>
    public IEnumerable<IntendedPage> Pages
    {
        get
        {
            foreach (var run in runs)
            {
                for (ulong i = 0; i < run.Count; i++)
                {
                    yield return run.Page(i);
                }
            }
        }
    }

    /// <summary>The runs the pages are kept in, in address order: what the model's work grows with.</summary>
    public IReadOnlyList<IntendedRun> Runs => runs;

    public void SetWalkLength(int length) => walkLength = length;

    /// <summary>After a raw write the model can no longer say what a region should translate to.</summary>
    public void MarkUnknown(ulong start, ulong end) => unknown.Add((start, end));

    public void MarkAllUnknown() => allUnknown = true;

    /// <summary>True after <see cref="MarkAllUnknown"/>: nothing the model says is checked any more.</summary>
    public bool AllUnknown => allUnknown;

    /// <summary>
    /// The guest-physical range an operation reads or changes (null: it touches no mapping): where a
    /// raw write makes the model unable to say what the operation should do.
    /// </summary>
    public static (ulong From, ulong To)? RangeOf(Step step)
    {
        const ulong gig = 1UL << 30;
        static (ulong, ulong) Range(ulong start, ulong size) => (start, start + size < start ? ulong.MaxValue : start + size);
        return step switch
        {
            MapStep m => Range(m.Gpa.Value, m.Size),
            UnmapStep u => Range(u.Gpa.Value, u.Size),
            ProtectStep p => Range(p.Gpa.Value, p.Size),
            RetypeStep r => Range(r.Gpa.Value, r.Size),
            SplitStep s => Range(s.Gpa.Value & ~(gig - 1), gig),
            MergeStep m => Range(m.Gpa.Value, m.Size),
            IdentityMapStep => (0UL, ulong.MaxValue),
            _ => null,
        };
    }

    /// <summary>True when no part of [start, end) was touched by a raw write.</summary>
    public bool IsKnownRange(ulong start, ulong end)
    {
        if (allUnknown)
        {
            return false;
        }

        foreach (var (s, e) in unknown)
        {
            if (s < end && start < e)
            {
                return false;
            }
        }

        return true;
    }

    public bool IsKnown(ulong gpa)
    {
        if (allUnknown)
        {
            return false;
        }

        foreach (var (s, e) in unknown)
        {
            if (gpa >= s && gpa < e)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The intended page containing <paramref name="gpa"/>, if any.</summary>
    public IntendedPage? Lookup(ulong gpa)
    {
        // A 4-level walk cannot reach GPA[51:48] != 0 (EPT-WALK-4): such pages, mapped while the
        // walk had 5 levels, are out of reach until it has 5 again.
        if (gpa >= GpaLimit)
        {
            return null;
        }

        int i = IndexContaining(gpa);
        return i < 0 ? null : runs[i].Page(runs[i].IndexOf(gpa));
    }

    private ulong GpaLimit => walkLength == 5 ? 1UL << 52 : 1UL << 48;

    private ulong HpaLimit => 1UL << cpu.MaxPhyAddr;

    public ApiResult Map(ulong gpa, ulong hpa, ulong size, EptPermissions permissions, MemoryType memoryType, bool ignorePat)
    {
        if (PageSizeOf(size) is not { } pageSize || !SizeSupported(pageSize) || !PermissionSupported(permissions))
        {
            return ApiResult.Unsupported;
        }

        if (!Aligned(gpa, size) || !Aligned(hpa, size))
        {
            return ApiResult.Unaligned;
        }

        if (!InRange(gpa, size) || hpa + size > HpaLimit || hpa + size < hpa)
        {
            return ApiResult.OutOfRange;
        }

        // A reserved memory type would be a misconfiguration (EPT-MISCONFIG-5): refused like one.
        if (!PermissionValid(permissions) || !TypeSupported(memoryType))
        {
            return ApiResult.InvalidPermission;
        }

        if (Overlapping(gpa, gpa + size) is var (first, last) && first < last)
        {
            return ApiResult.Duplicated;
        }

        Insert(new IntendedRun(new Gpa(gpa), new Hpa(hpa), pageSize, 1, permissions, memoryType, ignorePat));
        return ApiResult.Ok;
    }

    public ApiResult Unmap(ulong gpa, ulong size) => ChangeRange(gpa, size, null, null, false);

    public ApiResult Protect(ulong gpa, ulong size, EptPermissions permissions) => ChangeRange(gpa, size, permissions, null, false);

    public ApiResult Retype(ulong gpa, ulong size, MemoryType memoryType, bool ignorePat) => ChangeRange(gpa, size, null, memoryType, ignorePat);

    public ApiResult Split(ulong gpa)
    {
        if (!InRange(gpa, 1))
        {
            return ApiResult.OutOfRange;
        }

        int i = IndexContaining(gpa);
        if (i < 0 || runs[i].Size == PageSize.Size4K)
        {
            return ApiResult.NotExist;
        }

        var smaller = (PageSize)((int)runs[i].Size - 1);
        if (!SizeSupported(smaller))
        {
            return ApiResult.Unsupported;
        }

        ReplaceBySmaller(i, runs[i].IndexOf(gpa));
        return ApiResult.Ok;
    }

    public ApiResult Merge(ulong gpa, ulong size)
    {
        if (PageSizeOf(size) is not { } pageSize || pageSize == PageSize.Size4K || !SizeSupported(pageSize))
        {
            return ApiResult.Unsupported;
        }

        if (!Aligned(gpa, size))
        {
            return ApiResult.Unaligned;
        }

        if (!InRange(gpa, size))
        {
            return ApiResult.OutOfRange;
        }

        ulong end = gpa + size;
        var (first, last) = Overlapping(gpa, end);
        if (first == last)
        {
            return ApiResult.NotExist;
        }

        // Mergeable: exactly 512 pages of the next smaller size inside, guest and host addresses
        // contiguous from gpa and from a host address aligned to the merged size, one set of
        // attributes. Within a run all of that holds already, so each run is checked once.
        var smaller = (PageSize)((int)pageSize - 1);
        var head = runs[first];
        ulong hpa = head.Page(head.IndexOf(Math.Max(gpa, head.Gpa.Value))).Hpa.Value;
        ulong pages = 0;
        for (int i = first; i < last; i++)
        {
            var run = runs[i];
            ulong from = run.IndexOf(Math.Max(gpa, run.Gpa.Value));
            var page = run.Page(from);
            if (run.Size != smaller || !run.SameAttributes(head) || page.Gpa.Value != gpa + (pages << smaller.Shift()) || page.Hpa.Value != hpa + (pages << smaller.Shift()))
            {
                return ApiResult.NotMergeable;
            }

            pages += run.IndexOf(Math.Min(run.End, end) - 1) - from + 1;
        }

        if (pages != 512 || hpa % size != 0)
        {
            return ApiResult.NotMergeable;
        }

        CutAt(gpa);
        CutAt(end);
        (first, last) = Overlapping(gpa, end);
        runs.RemoveRange(first, last - first);
        runs.Insert(first, head with { Gpa = new Gpa(gpa), Hpa = new Hpa(hpa), Size = pageSize, Count = 1 });
        return ApiResult.Ok;
    }

    public ApiResult AddMemoryRange(ulong start, ulong end, MemoryType type)
    {
        if (!Aligned(start, 4096) || !Aligned(end, 4096) || end <= start)
        {
            return ApiResult.Unaligned;
        }

        if (end > GpaLimit)
        {
            return ApiResult.OutOfRange;
        }

        if (!TypeSupported(type))
        {
            return ApiResult.InvalidPermission;
        }

        foreach (var r in memoryMap)
        {
            if (r.Start < end && start < r.End)
            {
                return ApiResult.Duplicated;
            }
        }

        memoryMap.Add((start, end, type));
        memoryMap.Sort((a, b) => a.Start.CompareTo(b.Start));
        return ApiResult.Ok;
    }

    /// <summary>
    /// Maps every memory range rwx with its type, HPA = GPA (+ offset from offsetFrom on), each page
    /// the largest that the alignment of both addresses and a uniform type allow. All or nothing.
    /// </summary>
    public ApiResult IdentityMap(ulong offset, ulong offsetFrom)
    {
        // Pages start on 4 KiB boundaries on both sides, so the offset and where it starts must too.
        if (!Aligned(offset, 4096) || !Aligned(offsetFrom, 4096))
        {
            return ApiResult.Unaligned;
        }

        var planned = new List<IntendedRun>();
        foreach (var (start, end, type) in MergedMemoryMap())
        {
            ulong gpa = start;
            while (gpa < end)
            {
                ulong hpa = gpa >= offsetFrom ? gpa + offset : gpa;
                PageSize size = PageSize.Size4K;
                foreach (var candidate in LargeSizes)
                {
                    ulong bytes = candidate.Bytes();
                    // Where the offset starts the HPA jumps, so no page may straddle it (with a zero
                    // offset nothing jumps).
                    bool straddlesOffset = offset != 0 && gpa < offsetFrom && gpa + bytes > offsetFrom;
                    if (SizeSupported(candidate) && Aligned(gpa, bytes) && Aligned(hpa, bytes) && gpa + bytes <= end && !straddlesOffset)
                    {
                        size = candidate;
                        break;
                    }
                }

                var run = new IntendedRun(new Gpa(gpa), new Hpa(hpa), size, RunLength(gpa, size, end, offset, offsetFrom), EptPermissions.ReadAccess | EptPermissions.WriteAccess | EptPermissions.ExecuteAccess, type, false);
                // The page-by-page test, on the run's last two pages: hpa + size grows along the run
                // but for a last page ending at 2^64 (it wraps to 0), and once the HPAs wrap inside
                // the run, hpa < gpa holds for the last page.
                if ((run.Count > 1 && OutOfRange(run.Page(run.Count - 2))) || OutOfRange(run.Page(run.Count - 1)))
                {
                    return ApiResult.OutOfRange;
                }

                if (planned.Count > 0 && planned[^1] is var previous && previous.End == gpa && previous.Size == size && previous.Page(previous.Count).Hpa.Value == hpa && previous.SameAttributes(run))
                {
                    planned[^1] = previous with { Count = previous.Count + run.Count };
                }
                else
                {
                    planned.Add(run);
                }

                gpa = run.End;
            }
        }

        foreach (var run in planned)
        {
            if (Overlapping(run.Gpa.Value, run.End) is var (first, last) && first < last)
            {
                return ApiResult.Duplicated;
            }
        }

        foreach (var run in planned)
        {
            Insert(run);
        }

        return ApiResult.Ok;

        bool OutOfRange(IntendedPage p) => p.Hpa.Value + p.Size.Bytes() > HpaLimit || p.Hpa.Value < p.Gpa.Value && p.Gpa.Value >= offsetFrom;
    }

    private static readonly PageSize[] LargeSizes = [PageSize.Size1G, PageSize.Size2M];

    /// <summary>
    /// How many pages of <paramref name="size"/> from <paramref name="gpa"/> on the identity map's
    /// choice of page size gives alike: up to the range's end, the next boundary of a larger size the
    /// processor supports (there a larger page may fit), and where the HPA jumps. In between the
    /// alignment of both addresses relative to the size stays what it is at gpa.
    /// </summary>
    private ulong RunLength(ulong gpa, PageSize size, ulong end, ulong offset, ulong offsetFrom)
    {
        ulong limit = end;
        if (offset != 0 && gpa < offsetFrom)
        {
            limit = Math.Min(limit, offsetFrom);
        }

        foreach (var larger in LargeSizes)
        {
            if (larger > size && SizeSupported(larger))
            {
                limit = Math.Min(limit, (gpa | (larger.Bytes() - 1)) + 1);
            }
        }

        return (limit - gpa) >> size.Shift();
    }

    /// <summary>Adjacent memory ranges of the same type count as one.</summary>
    private IEnumerable<(ulong Start, ulong End, MemoryType Type)> MergedMemoryMap()
    {
        (ulong Start, ulong End, MemoryType Type)? current = null;
        foreach (var r in memoryMap)
        {
            if (current is { } c && c.End == r.Start && c.Type == r.Type)
            {
                current = (c.Start, r.End, c.Type);
                continue;
            }

            if (current is { } done)
            {
                yield return done;
            }

            current = r;
        }

        if (current is { } last)
        {
            yield return last;
        }
    }

    /// <summary>
    /// Unmap, protect and retype: every 4 KiB page of the range must be mapped (else NotExist and
    /// nothing changes); pages the range covers only in part are split first, smallest split that
    /// isolates the range. With neither permissions nor a type the pages are unmapped.
    /// </summary>
    private ApiResult ChangeRange(ulong gpa, ulong size, EptPermissions? permissions, MemoryType? type, bool ignorePat)
    {
        if (permissions is { } p0 && !PermissionSupported(p0))
        {
            return ApiResult.Unsupported;
        }

        if (size == 0 || !Aligned(gpa, 4096) || !Aligned(size, 4096))
        {
            return ApiResult.Unaligned;
        }

        if (!InRange(gpa, size))
        {
            return ApiResult.OutOfRange;
        }

        if ((permissions is { } p && !PermissionValid(p)) || (type is { } t && !TypeSupported(t)))
        {
            return ApiResult.InvalidPermission;
        }

        ulong end = gpa + size;
        var (first, last) = Overlapping(gpa, end);
        ulong covered = 0;
        for (int i = first; i < last; i++)
        {
            covered += Math.Min(runs[i].End, end) - Math.Max(runs[i].Gpa.Value, gpa);
        }

        if (covered != size)
        {
            return ApiResult.NotExist;
        }

        // Split pages that straddle either edge until every page is inside or outside the range;
        // then cut the runs there, so that each run is inside or outside too.
        SplitAcross(gpa);
        SplitAcross(end);
        CutAt(gpa);
        CutAt(end);
        (first, last) = Overlapping(gpa, end);
        if (permissions is null && type is null)
        {
            runs.RemoveRange(first, last - first);
            return ApiResult.Ok;
        }

        for (int i = first; i < last; i++)
        {
            runs[i] = permissions is { } changed
                ? runs[i] with { Permissions = changed }
                : runs[i] with { MemoryType = type!.Value, IgnorePat = ignorePat };
        }

        return ApiResult.Ok;
    }

    /// <summary>Splits the page that straddles <paramref name="edge"/> until none does.</summary>
    private void SplitAcross(ulong edge)
    {
        while (IndexContaining(edge) is var i && i >= 0 && !Aligned(edge - runs[i].Gpa.Value, runs[i].Size.Bytes()))
        {
            ReplaceBySmaller(i, runs[i].IndexOf(edge));
        }
    }

    /// <summary>Makes a run start at <paramref name="gpa"/>, a page boundary, if one covers it.</summary>
    private void CutAt(ulong gpa)
    {
        int i = IndexContaining(gpa);
        if (i >= 0 && runs[i].Gpa.Value != gpa)
        {
            var run = runs[i];
            ulong head = run.IndexOf(gpa);
            runs[i] = run.Slice(0, head);
            runs.Insert(i + 1, run.Slice(head, run.Count - head));
        }
    }

    /// <summary>
    /// Replaces page <paramref name="index"/> of run <paramref name="i"/> by pages of the next smaller
    /// size the processor supports (a 1 GiB page on a processor without 2 MiB pages becomes 4 KiB
    /// pages), same attributes: one run of smaller pages between what is left of the old run.
    /// </summary>
    private void ReplaceBySmaller(int i, ulong index)
    {
        var run = runs[i];
        var smaller = (PageSize)((int)run.Size - 1);
        while (!SizeSupported(smaller))
        {
            smaller = (PageSize)((int)smaller - 1);
        }

        runs[i] = run.Slice(index, 1) with { Size = smaller, Count = run.Size.Bytes() / smaller.Bytes() };
        if (index + 1 < run.Count)
        {
            runs.Insert(i + 1, run.Slice(index + 1, run.Count - index - 1));
        }

        if (index > 0)
        {
            runs.Insert(i, run.Slice(0, index));
        }
    }

    /// <summary>The runs overlapping [start, end): indices first to last, last excluded.</summary>
    private (int First, int Last) Overlapping(ulong start, ulong end)
    {
        int first = LastStartingAtOrBelow(start);
        if (first < 0 || runs[first].End <= start)
        {
            first++;
        }

        return (first, LastStartingAtOrBelow(end - 1) + 1);
    }

    /// <summary>The run containing <paramref name="gpa"/>, or -1.</summary>
    private int IndexContaining(ulong gpa)
    {
        int i = LastStartingAtOrBelow(gpa);
        return i >= 0 && gpa < runs[i].End ? i : -1;
    }

    /// <summary>The last run starting at or below <paramref name="gpa"/>, or -1.</summary>
    private int LastStartingAtOrBelow(ulong gpa)
    {
        int low = 0, high = runs.Count;
        while (low < high)
        {
            int middle = (low + high) >>> 1;
            if (runs[middle].Gpa.Value <= gpa)
            {
                low = middle + 1;
            }
            else
            {
                high = middle;
            }
        }

        return low - 1;
    }

    /// <summary>Adds a run where nothing is mapped; an overlap is a bug here.</summary>
    private void Insert(IntendedRun run)
    {
        int i = LastStartingAtOrBelow(run.Gpa.Value) + 1;
        if ((i > 0 && runs[i - 1].End > run.Gpa.Value) || (i < runs.Count && runs[i].Gpa.Value < run.End))
        {
            throw new InvalidOperationException($"an intended page already covers {run.Gpa}");
        }

        runs.Insert(i, run);
    }

    private static PageSize? PageSizeOf(ulong size) => size switch
    {
        4096 => PageSize.Size4K,
        1UL << 21 => PageSize.Size2M,
        1UL << 30 => PageSize.Size1G,
        _ => null,
    };

    private bool SizeSupported(PageSize size) => size switch
    {
        PageSize.Size2M => cpu.Page2M,
        PageSize.Size1G => cpu.Page1G,
        _ => true,
    };

    /// <summary>User-mode execute (bit 10) exists only on a processor with MBEC.</summary>
    private bool PermissionSupported(EptPermissions permissions) =>
        cpu.Mbec || !permissions.HasFlag(EptPermissions.UserModeExecute);

    private static bool TypeSupported(MemoryType type) => type is MemoryType.UC or MemoryType.WC or MemoryType.WT or MemoryType.WP or MemoryType.WB;

    /// <summary>EPT-MISCONFIG-1..3: write without read; execute without read where the processor has no execute-only.</summary>
    private bool PermissionValid(EptPermissions permissions)
    {
        bool read = permissions.HasFlag(EptPermissions.ReadAccess);
        if (!read && permissions.HasFlag(EptPermissions.WriteAccess))
        {
            return false;
        }

        // On a processor with MBEC, XU without R is execute-only whether or not the control is on
        // now: the entry would be a misconfiguration as soon as it is (EPT-MISCONFIG-3).
        bool execute = permissions.HasFlag(EptPermissions.ExecuteAccess) || (cpu.Mbec && permissions.HasFlag(EptPermissions.UserModeExecute));
        return read || !execute || cpu.ExecuteOnly;
    }

    private bool InRange(ulong gpa, ulong size) => gpa + size <= GpaLimit && gpa + size > gpa;

    private static bool Aligned(ulong value, ulong alignment) => (value & (alignment - 1)) == 0;
}

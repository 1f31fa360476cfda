using EptFuzz.Contract;
using EptFuzz.Harness.Intent;

namespace EptFuzz.Harness.Tests.Intent;

/// <summary>
/// The intent model as it was before runs: every intended page its own element of a sorted set. Kept,
/// test-only and unchanged but for its name, as the oracle that <see cref="IntentModel"/> must match
/// result for result and lookup for lookup (see IntentDifferentialTests).
/// </summary>
public sealed class ReferenceIntentModel
{
    /// <summary>Pages ordered by guest-physical start; never overlapping. A set ordered by start (not a
    /// SortedDictionary) so that <see cref="Overlapping"/> visits only the pages near a range.</summary>
    private readonly SortedSet<IntendedPage> pages = new(ByStart.Instance);
    private readonly List<(ulong Start, ulong End)> unknown = [];
    private readonly List<(ulong Start, ulong End, MemoryType Type)> memoryMap = [];
    private readonly CpuCapabilities cpu;
    private int walkLength = 4;
    private bool allUnknown;

    public ReferenceIntentModel(CpuCapabilities cpu) => this.cpu = cpu;

    public VmxControls Controls { get; set; }

    public int Count => pages.Count;

    public IEnumerable<IntendedPage> Pages => pages;

    public void SetWalkLength(int length) => walkLength = length;

    /// <summary>After a raw write the model can no longer say what a region should translate to.</summary>
    public void MarkUnknown(ulong start, ulong end) => unknown.Add((start, end));

    public void MarkAllUnknown() => allUnknown = true;

    /// <summary>True after <see cref="MarkAllUnknown"/>: nothing the model says is checked any more.</summary>
    public bool AllUnknown => allUnknown;

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

        // Pages are at most 1 GiB: the candidate starts at the greatest key at or below gpa.
        IntendedPage? found = null;
        foreach (var size in Sizes)
        {
            ulong start = gpa & ~(size.Bytes() - 1);
            if (pages.TryGetValue(At(start), out var p) && p.Size == size)
            {
                found = p;
                break;
            }
        }

        return found;
    }

    private static readonly PageSize[] Sizes = [PageSize.Size4K, PageSize.Size2M, PageSize.Size1G];

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

        if (Overlapping(gpa, gpa + size).Any())
        {
            return ApiResult.Duplicated;
        }

        Add(new IntendedPage(new Gpa(gpa), new Hpa(hpa), pageSize, permissions, memoryType, ignorePat));
        return ApiResult.Ok;
    }

    public ApiResult Unmap(ulong gpa, ulong size) => ChangeRange(gpa, size, null, null, _ => null);

    public ApiResult Protect(ulong gpa, ulong size, EptPermissions permissions) =>
        ChangeRange(gpa, size, permissions, null, p => p with { Permissions = permissions });

    public ApiResult Retype(ulong gpa, ulong size, MemoryType memoryType, bool ignorePat) =>
        ChangeRange(gpa, size, null, memoryType, p => p with { MemoryType = memoryType, IgnorePat = ignorePat });

    public ApiResult Split(ulong gpa)
    {
        if (!InRange(gpa, 1))
        {
            return ApiResult.OutOfRange;
        }

        if (Lookup(gpa) is not { } page || page.Size == PageSize.Size4K)
        {
            return ApiResult.NotExist;
        }

        var smaller = (PageSize)((int)page.Size - 1);
        if (!SizeSupported(smaller))
        {
            return ApiResult.Unsupported;
        }

        ReplaceBySmaller(page);
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

        var inside = Overlapping(gpa, gpa + size).ToList();
        if (inside.Count == 0)
        {
            return ApiResult.NotExist;
        }

        var smaller = (PageSize)((int)pageSize - 1);
        ulong step = smaller.Bytes();
        if (inside.Count != 512 || inside[0].Hpa.Value % size != 0)
        {
            return ApiResult.NotMergeable;
        }

        for (int i = 0; i < inside.Count; i++)
        {
            var p = inside[i];
            if (p.Size != smaller || p.Gpa.Value != gpa + (ulong)i * step || p.Hpa.Value != inside[0].Hpa.Value + (ulong)i * step || !p.SameAttributes(inside[0]))
            {
                return ApiResult.NotMergeable;
            }
        }

        foreach (var p in inside)
        {
            pages.Remove(p);
        }

        Add(inside[0] with { Gpa = new Gpa(gpa), Size = pageSize });
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

        if (memoryMap.Any(r => r.Start < end && start < r.End))
        {
            return ApiResult.Duplicated;
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

        var planned = new List<IntendedPage>();
        foreach (var (start, end, type) in MergedMemoryMap())
        {
            ulong gpa = start;
            while (gpa < end)
            {
                ulong hpa = gpa >= offsetFrom ? gpa + offset : gpa;
                PageSize size = PageSize.Size4K;
                foreach (var candidate in new[] { PageSize.Size1G, PageSize.Size2M })
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

                if (hpa + size.Bytes() > HpaLimit || hpa < gpa && gpa >= offsetFrom)
                {
                    return ApiResult.OutOfRange;
                }

                planned.Add(new IntendedPage(new Gpa(gpa), new Hpa(hpa), size, EptPermissions.ReadAccess | EptPermissions.WriteAccess | EptPermissions.ExecuteAccess, type, false));
                gpa += size.Bytes();
            }
        }

        if (planned.Any(p => Overlapping(p.Gpa.Value, p.End).Any()))
        {
            return ApiResult.Duplicated;
        }

        foreach (var p in planned)
        {
            Add(p);
        }

        return ApiResult.Ok;
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
    /// isolates the range.
    /// </summary>
    private ApiResult ChangeRange(ulong gpa, ulong size, EptPermissions? permissions, MemoryType? type, Func<IntendedPage, IntendedPage?> change)
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
        ulong covered = 0;
        foreach (var page in Overlapping(gpa, end))
        {
            covered += Math.Min(page.End, end) - Math.Max(page.Gpa.Value, gpa);
        }

        if (covered != size)
        {
            return ApiResult.NotExist;
        }

        // Split pages that straddle either edge until every page is inside or outside the range.
        bool splitAny = true;
        while (splitAny)
        {
            splitAny = false;
            foreach (var page in Overlapping(gpa, end).ToList())
            {
                if (page.Gpa.Value < gpa || page.End > end)
                {
                    ReplaceBySmaller(page);
                    splitAny = true;
                }
            }
        }

        foreach (var page in Overlapping(gpa, end).ToList())
        {
            pages.Remove(page);
            if (change(page) is { } changed)
            {
                Add(changed);
            }
        }

        return ApiResult.Ok;
    }

    /// <summary>
    /// Replaces a page by pages of the next smaller size the processor supports (a 1 GiB page on a
    /// processor without 2 MiB pages becomes 4 KiB pages), same attributes.
    /// </summary>
    private void ReplaceBySmaller(IntendedPage page)
    {
        var smaller = (PageSize)((int)page.Size - 1);
        while (!SizeSupported(smaller))
        {
            smaller = (PageSize)((int)smaller - 1);
        }

        ulong step = smaller.Bytes();
        ulong count = page.Size.Bytes() / step;
        pages.Remove(page);
        for (ulong i = 0; i < count; i++)
        {
            Add(page with { Gpa = page.Gpa + i * step, Hpa = page.Hpa + i * step, Size = smaller });
        }
    }

    /// <summary>Pages overlapping [start, end), in address order.</summary>
    private IEnumerable<IntendedPage> Overlapping(ulong start, ulong end)
    {
        // A page starting below `start` can overlap only if it is at most 1 GiB below.
        ulong from = start >= (1UL << 30) ? start - (1UL << 30) + 1 : 0;
        if (end <= from || pages.Count == 0)
        {
            yield break;
        }

        foreach (var page in pages.GetViewBetween(At(from), At(end - 1)))
        {
            if (page.End > start)
            {
                yield return page;
            }
        }
    }

    /// <summary>A key for the set: only the start matters to its order.</summary>
    private static IntendedPage At(ulong gpa) => new(new Gpa(gpa), default, default, default, default, false);

    /// <summary>Adds a page whose start is free; a second page at one start is a bug here, as it was for the dictionary.</summary>
    private void Add(IntendedPage page)
    {
        if (!pages.Add(page))
        {
            throw new InvalidOperationException($"an intended page already starts at {page.Gpa}");
        }
    }

    private sealed class ByStart : IComparer<IntendedPage>
    {
        public static readonly ByStart Instance = new();

        public int Compare(IntendedPage x, IntendedPage y) => x.Gpa.Value.CompareTo(y.Gpa.Value);
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

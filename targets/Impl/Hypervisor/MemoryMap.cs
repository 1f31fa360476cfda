using EptFuzz.Contract;
using EptFuzz.Impl.Ept;

namespace EptFuzz.Impl.Hypervisor;

/// <summary>One range [Start, End) of the guest's memory map (E820 plus MTRR types).</summary>
public readonly record struct MemoryRange(Gpa Start, Gpa End, MemoryType MemoryType);

/// <summary>
/// The guest's memory map and the plan that maps it: the largest page that the alignment of both
/// addresses and a uniform memory type allow at each step. Greedy largest-first is minimal in
/// table pages: a page of size S covers its whole S-aligned slot, so no other choice can avoid a
/// table that this one needs (tests check the count against an independent lower bound).
/// </summary>
public sealed class MemoryMap
{
    private readonly List<MemoryRange> ranges = [];

    public IReadOnlyList<MemoryRange> Ranges => ranges;

    public ApiResult Add(Gpa start, Gpa end, MemoryType memoryType, ulong gpaLimit)
    {
        if (start.Value >= end.Value || ((start.Value | end.Value) & (LevelGeometry.PageBytes - 1)) != 0)
        {
            return ApiResult.Unaligned;
        }

        if (end.Value > gpaLimit)
        {
            return ApiResult.OutOfRange;
        }

        if (!EptBits.IsValidEptMemoryType(memoryType))
        {
            return ApiResult.InvalidPermission;
        }

        int at = 0;
        while (at < ranges.Count && ranges[at].Start.Value < start.Value)
        {
            at++;
        }

        bool overlapsPrevious = at > 0 && ranges[at - 1].End.Value > start.Value;
        bool overlapsNext = at < ranges.Count && ranges[at].Start.Value < end.Value;
        if (overlapsPrevious || overlapsNext)
        {
            return ApiResult.Duplicated;
        }

        ranges.Insert(at, new MemoryRange(start, end, memoryType));
        return ApiResult.Ok;
    }

    /// <summary>
    /// The pages of the identity (or offset) map: HPA = GPA, or GPA + offset at and above
    /// <paramref name="offsetFrom"/>. Fails with ResourceLimit, before anything is built, when the
    /// 4 KiB pages alone would need more page tables than <paramref name="availableTables"/>.
    /// </summary>
    public ApiResult Plan(ulong offset, Gpa offsetFrom, CpuCapabilities cpu, ulong hpaLimit, int availableTables, List<PlannedPage> into)
    {
        if (((offset | offsetFrom.Value) & (LevelGeometry.PageBytes - 1)) != 0)
        {
            return ApiResult.Unaligned;
        }

        ulong smallPages = 0;
        foreach ((ulong start, ulong end, MemoryType type) in Runs(offset, offsetFrom))
        {
            ulong shift = start >= offsetFrom.Value ? offset : 0;
            if (start + shift < start || end + shift < end || end + shift > hpaLimit)
            {
                return ApiResult.OutOfRange;
            }

            for (ulong gpa = start; gpa < end;)
            {
                PageSize size = LargestPage(gpa, gpa + shift, end - gpa, cpu);
                into.Add(new PlannedPage(new Gpa(gpa), new Hpa(gpa + shift), size, EptPermissions.ReadAccess | EptPermissions.WriteAccess | EptPermissions.ExecuteAccess, type));
                if (size == PageSize.Size4K && ++smallPages > (ulong)availableTables * LevelGeometry.EntriesPerTable)
                {
                    return ApiResult.ResourceLimit;
                }

                gpa += size.Bytes();
            }
        }

        return ApiResult.Ok;
    }

    /// <summary>Adjacent ranges of one type form one run; a run is cut where the offset starts (the HPA jumps there).</summary>
    private IEnumerable<(ulong Start, ulong End, MemoryType Type)> Runs(ulong offset, Gpa offsetFrom)
    {
        int i = 0;
        while (i < ranges.Count)
        {
            ulong start = ranges[i].Start.Value;
            ulong end = ranges[i].End.Value;
            MemoryType type = ranges[i].MemoryType;
            i++;
            while (i < ranges.Count && ranges[i].Start.Value == end && ranges[i].MemoryType == type)
            {
                end = ranges[i].End.Value;
                i++;
            }

            if (offset != 0 && start < offsetFrom.Value && offsetFrom.Value < end)
            {
                yield return (start, offsetFrom.Value, type);
                yield return (offsetFrom.Value, end, type);
            }
            else
            {
                yield return (start, end, type);
            }
        }
    }

    private static PageSize LargestPage(ulong gpa, ulong hpa, ulong remaining, CpuCapabilities cpu)
    {
        foreach (PageSize size in (ReadOnlySpan<PageSize>)[PageSize.Size1G, PageSize.Size2M])
        {
            bool supported = size == PageSize.Size1G ? cpu.Page1G : cpu.Page2M;
            ulong bytes = size.Bytes();
            if (supported && ((gpa | hpa) & (bytes - 1)) == 0 && remaining >= bytes)
            {
                return size;
            }
        }

        return PageSize.Size4K;
    }
}

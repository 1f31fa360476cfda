using EptFuzz.Contract;

namespace EptFuzz.Harness.Cases;

/// <summary>
/// How many leaf entries an <c>identity-map</c> needs: the rule of case-format.md (largest page
/// size that the alignment of both addresses and a uniform memory type allow; adjacent ranges of
/// the same type count as one) counted in closed form, never page by page, so that a range of
/// 2^52 bytes costs nothing to estimate. Used to refuse absurd cases before any target builds them.
/// </summary>
internal static class IdentityMapEstimate
{
    private const int Shift4K = 12;

    /// <summary>Leaves needed (saturating); overlapping ranges are counted once each, an upper bound.</summary>
    public static UInt128 Leaves(IReadOnlyList<MemoryStep> ranges, ulong offset, ulong offsetFrom, bool page2M, bool page1G)
    {
        var sorted = new List<(UInt128 Start, UInt128 End, MemoryType Type)>(ranges.Count);
        foreach (MemoryStep r in ranges)
        {
            sorted.Add((r.Start.Value, r.End.Value, r.MemoryType));
        }

        sorted.Sort((a, b) => a.Start.CompareTo(b.Start));

        UInt128 total = 0;
        int i = 0;
        while (i < sorted.Count)
        {
            (UInt128 start, UInt128 end, MemoryType type) = sorted[i++];
            while (i < sorted.Count && sorted[i].Start == end && sorted[i].Type == type)
            {
                end = sorted[i++].End;
            }

            // Pages are whole 4K frames: an unaligned edge still costs the frame it touches.
            start = start >> Shift4K << Shift4K;
            end = (end + 0xfff) >> Shift4K << Shift4K;

            // Below offset-from HPA = GPA (delta 0); at or above it HPA = GPA + offset.
            UInt128 split = UInt128.Clamp(offsetFrom, start, end);
            total += Segment(start, split, 0, page2M, page1G);
            total += Segment(split, end, offset, page2M, page1G);
        }

        return total;
    }

    private static UInt128 Segment(UInt128 start, UInt128 end, ulong delta, bool page2M, bool page1G)
    {
        if (start >= end)
        {
            return 0;
        }

        // A page of size P needs GPA and HPA = GPA + delta both P-aligned, so delta must be too.
        Span<int> shifts = stackalloc int[3];
        int n = 0;
        if (page1G && delta % (1UL << 30) == 0)
        {
            shifts[n++] = 30;
        }

        if (page2M && delta % (1UL << 21) == 0)
        {
            shifts[n++] = 21;
        }

        shifts[n++] = Shift4K;
        return Count(start, end, shifts[..n]);
    }

    /// <summary>Greedy largest-first tiling of [start, end) with the given page shifts (descending).</summary>
    private static UInt128 Count(UInt128 start, UInt128 end, ReadOnlySpan<int> shifts)
    {
        if (start >= end)
        {
            return 0;
        }

        int shift = shifts[0];
        if (shifts.Length == 1)
        {
            return (end - start) >> shift;
        }

        UInt128 mask = (UInt128.One << shift) - 1;
        UInt128 alignedStart = (start + mask) & ~mask;
        UInt128 alignedEnd = end & ~mask;
        if (alignedStart >= alignedEnd)
        {
            return Count(start, end, shifts[1..]);
        }

        return ((alignedEnd - alignedStart) >> shift)
            + Count(start, alignedStart, shifts[1..])
            + Count(alignedEnd, end, shifts[1..]);
    }
}

using EptFuzz.Contract;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Intent;

/// <summary>
/// What the guest-paging steps' own arguments decide (spec/case-format.md, "Each operation has a
/// result"): <c>guest paging=4level</c> and <c>gmap</c> fail with <c>Unsupported</c>,
/// <c>Unaligned</c> or <c>OutOfRange</c> exactly when their arguments say so, in that order, and
/// never with one of those when the arguments are valid. Whether a valid <c>gmap</c> then succeeds
/// depends on the guest tables and the EPT (<c>Duplicated</c>, <c>NotExist</c>), which raw edits
/// can change, so that part is left to the translators' comparison.
/// </summary>
public static class GuestIntent
{
    private const ulong K4 = 1UL << 12;

    /// <summary>
    /// Null when <paramref name="result"/> fits what the arguments decide; else what they decide
    /// (an error name, or <c>valid-arguments</c> when the arguments are valid but the result is an
    /// argument error).
    /// </summary>
    public static string? Check(Step step, ApiResult result, bool pagingOn, int maxPhyAddr)
    {
        ApiResult? decided;
        switch (step)
        {
            case GMapStep g:
                decided = GMap(g, pagingOn, maxPhyAddr);
                break;
            case GuestStep { Paging: true } s:
                decided = Paging(s, maxPhyAddr);
                break;
            case GuestStep:
                return result == ApiResult.Ok ? null : "Ok";
            default:
                return null;
        }

        if (decided is { } d)
        {
            return result == d ? null : d.ToString();
        }

        // Valid arguments: what remains depends on the tables and the EPT.
        bool fits = step is GuestStep
            ? result is ApiResult.Ok or ApiResult.NotExist
            : result is ApiResult.Ok or ApiResult.Duplicated or ApiResult.NotExist or ApiResult.ResourceLimit;
        return fits ? null : "valid-arguments";
    }

    /// <summary>The argument error of a <c>gmap</c>, or null when its arguments are valid.</summary>
    public static ApiResult? GMap(GMapStep g, bool pagingOn, int maxPhyAddr)
    {
        ulong size = g.Size;
        if (!pagingOn || size is not (K4 or 1UL << 21 or 1UL << 30))
        {
            return ApiResult.Unsupported;
        }

        if (((g.Gva.Value | g.Gpa.Value) & (size - 1)) != 0)
        {
            return ApiResult.Unaligned;
        }

        ulong limit = 1UL << maxPhyAddr;
        ulong top = g.Gva.Value >> 47;
        if ((top != 0 && top != 0x1FFFF) || g.Gpa.Value >= limit || size > limit - g.Gpa.Value)
        {
            return ApiResult.OutOfRange;
        }

        return null;
    }

    /// <summary>The argument error of <c>guest paging=4level</c>, or null when its arguments are valid.</summary>
    public static ApiResult? Paging(GuestStep s, int maxPhyAddr)
    {
        ulong start = s.TablesStart?.Value ?? 0, end = s.TablesEnd?.Value ?? 0, cr3 = s.Cr3?.Value ?? 0;
        if (start > end || ((start | end) & (K4 - 1)) != 0)
        {
            return ApiResult.Unaligned;
        }

        ulong limit = 1UL << maxPhyAddr;
        if (cr3 >= limit || end > limit)
        {
            return ApiResult.OutOfRange;
        }

        ulong root = cr3 & ~(K4 - 1);
        if (root >= start && root < end)
        {
            return ApiResult.Duplicated;
        }

        return null;
    }
}

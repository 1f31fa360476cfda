using EptFuzz.Contract;

namespace EptFuzz.Harness.Intent;

/// <summary>
/// <see cref="Count"/> consecutive intended pages of one size, host addresses contiguous as well, all
/// with the same attributes. A split of a 1 GiB page into 4 KiB pages is one run of 262,144 pages,
/// so the intent model's work does not grow with the pages an operation produces.
/// </summary>
public readonly record struct IntendedRun(Gpa Gpa, Hpa Hpa, PageSize Size, ulong Count, EptPermissions Permissions, MemoryType MemoryType, bool IgnorePat)
{
    /// <summary>Guest-physical pages lie below 2^52, so this cannot wrap.</summary>
    public ulong End => Gpa.Value + (Count << Size.Shift());

    public static IntendedRun Of(IntendedPage page) =>
        new(page.Gpa, page.Hpa, page.Size, 1, page.Permissions, page.MemoryType, page.IgnorePat);

    /// <summary>The page at <paramref name="index"/> (host addresses wrap as the page-by-page model's did).</summary>
    public IntendedPage Page(ulong index)
    {
        ulong offset = index << Size.Shift();
        return new(Gpa + offset, Hpa + offset, Size, Permissions, MemoryType, IgnorePat);
    }

    /// <summary>Index of the page that contains <paramref name="gpa"/>, which must lie in the run.</summary>
    public ulong IndexOf(ulong gpa) => (gpa - Gpa.Value) >> Size.Shift();

    /// <summary>The <paramref name="count"/> pages from <paramref name="first"/> on.</summary>
    public IntendedRun Slice(ulong first, ulong count)
    {
        ulong offset = first << Size.Shift();
        return this with { Gpa = Gpa + offset, Hpa = Hpa + offset, Count = count };
    }

    public bool SameAttributes(IntendedRun other) =>
        Permissions == other.Permissions && MemoryType == other.MemoryType && IgnorePat == other.IgnorePat;
}

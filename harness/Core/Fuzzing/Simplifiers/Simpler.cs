using System.Numerics;
using EptFuzz.Contract;

namespace EptFuzz.Harness.Fuzzing.Simplifiers;

/// <summary>Simpler values the step simplifiers share: sizes, permissions, addresses.</summary>
public static class Simpler
{
    /// <summary>The page sizes (4 KiB, 2 MiB, 1 GiB) below <paramref name="size"/>, smallest first.</summary>
    public static IEnumerable<ulong> Sizes(ulong size)
    {
        foreach (ulong s in (ulong[])[1UL << 12, 1UL << 21, 1UL << 30])
        {
            if (s < size)
            {
                yield return s;
            }
        }
    }

    /// <summary><paramref name="p"/> with one permission less, user-mode execute first and read last.</summary>
    public static IEnumerable<EptPermissions> Permissions(EptPermissions p)
    {
        foreach (EptPermissions bit in (EptPermissions[])[EptPermissions.UserModeExecute, EptPermissions.ExecuteAccess, EptPermissions.WriteAccess, EptPermissions.ReadAccess])
        {
            if (p.HasFlag(bit))
            {
                yield return p & ~bit;
            }
        }
    }

    /// <summary>The address with its offset inside the page dropped, and with its highest bit cleared (keeping the alignment).</summary>
    public static IEnumerable<ulong> Addresses(ulong a, ulong align)
    {
        ulong pageAligned = a & ~0xFFFUL;
        if (pageAligned != a)
        {
            yield return pageAligned;
        }

        if (a != 0)
        {
            ulong top = 1UL << (63 - BitOperations.LeadingZeroCount(a));
            ulong cleared = a & ~top;
            if (align <= 1 || (cleared & (align - 1)) == 0)
            {
                yield return cleared;
            }
        }
    }
}

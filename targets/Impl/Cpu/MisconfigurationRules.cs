using System.Runtime.CompilerServices;
using EptFuzz.Contract;
using EptFuzz.Impl.Ept;

namespace EptFuzz.Impl.Cpu;

/// <summary>
/// EPT-MISCONFIG-1..6 for one processor and one MBEC setting, decided once as masks: which bits
/// must be 0 in a present entry of each kind (level and bit 7), and which combinations of its
/// permission and memory-type bits are misconfigurations. The walk then tests an entry with two
/// table lookups instead of a chain of branches (the chain was a third of every level).
/// </summary>
internal sealed class MisconfigurationRules
{
    // Levels 1..5, each with bit 7 clear or set.
    private const int Kinds = 10;

    // Per kind: bits that must be 0.
    private readonly KindMasks _reserved;
    // Per kind and XU (bit 10): bit i set when an entry whose bits [5:0] (R, W, X, memory type) are i is misconfigured.
    private readonly KindAndXuMasks _badLowBits;

    public MisconfigurationRules(CpuCapabilities cpu, bool mbec)
    {
        // [51:N] reserved at every level.
        ulong aboveMaxPhyAddr = EptBits.AddressMask & ~EptBits.AddressMaskBelow(cpu.MaxPhyAddr);
        for (int kind = 0; kind < Kinds; kind++)
        {
            EptLevel level = (EptLevel)(kind / 2 + 1);
            bool largePage = kind % 2 == 1;
            _reserved[kind] = aboveMaxPhyAddr | ReservedBits(level, largePage, cpu);
            bool mapsPage = level == EptLevel.Pte || (LevelGeometry.CanMapPage(level) && largePage);
            for (int low = 0; low < 64; low++)
            {
                for (int xu = 0; xu < 2; xu++)
                {
                    ulong value = (uint)low | (xu == 1 ? EptBits.UserModeExecute : 0);
                    // The memory type (EPT-MISCONFIG-5) counts only where the entry maps a page; elsewhere its bits are reserved.
                    if (IsBadPermissionCombination(value, cpu, mbec) || (mapsPage && !EptBits.IsValidEptMemoryType(EptBits.DecodeType(value))))
                    {
                        _badLowBits[kind * 2 + xu] |= 1UL << low;
                    }
                }
            }
        }
    }

    /// <summary>EPT-MISCONFIG-1..6 for a present entry at <paramref name="level"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsMisconfigured(ulong value, EptLevel level)
    {
        int kind = ((int)level - 1) * 2 + (int)((value >> 7) & 1);
        int xu = (int)((value >> 10) & 1);
        return ((value & _reserved[kind]) | ((_badLowBits[kind * 2 + xu] >> (int)(value & 63)) & 1)) != 0;
    }

    // EPT-MISCONFIG-1..3, for an entry's permission bits alone.
    private static bool IsBadPermissionCombination(ulong value, CpuCapabilities cpu, bool mbec)
    {
        bool read = (value & EptBits.ReadAccess) != 0;
        if (!read && (value & EptBits.WriteAccess) != 0)
        {
            return true;
        }

        bool execute = (value & EptBits.ExecuteAccess) != 0 || (mbec && (value & EptBits.UserModeExecute) != 0);
        return !read && execute && !cpu.ExecuteOnly;
    }

    // EPT-MISCONFIG-4 and the reserved bits of Tables 28-1..28-6, besides [51:N].
    private static ulong ReservedBits(EptLevel level, bool largePage, CpuCapabilities cpu)
    {
        switch (level)
        {
            case EptLevel.Pml5e:
            case EptLevel.Pml4e:
                // [7:3] reserved.
                return 0xF8UL;
            case EptLevel.Pdpte:
            case EptLevel.Pde:
                if (!largePage)
                {
                    // [6:3] reserved in an entry that references a table.
                    return 0x78UL;
                }

                // Bit 7 is reserved where the page size is not supported (all bits: the entry is misconfigured
                // whatever else it holds); [29:12] / [20:12] are reserved in a page.
                bool supported = level == EptLevel.Pdpte ? cpu.Page1G : cpu.Page2M;
                ulong lowAddress = EptBits.AddressMask & (LevelGeometry.Span(level) - 1);
                return !supported ? ulong.MaxValue : lowAddress;
            default:
                // Bit 7 of a PTE is ignored.
                return 0;
        }
    }

    [InlineArray(Kinds)]
    private struct KindMasks
    {
        private ulong _first;
    }

    [InlineArray(Kinds * 2)]
    private struct KindAndXuMasks
    {
        private ulong _first;
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using EptFuzz.Contract;
using EptFuzz.Impl.Ept;

namespace EptFuzz.Impl.Cpu;

/// <summary>What a walk does with an entry it read.</summary>
internal enum EptEntryClass : byte
{
    /// <summary>Present and well formed, references the next table: walk on.</summary>
    Table,
    /// <summary>Present and well formed, maps a page: the walk ends here.</summary>
    Page,
    /// <summary>EPT-PRESENT-1: an EPT violation.</summary>
    NotPresent,
    /// <summary>EPT-MISCONFIG-1..6: an EPT misconfiguration.</summary>
    Misconfigured,
}

/// <summary>
/// The class of every EPT entry for one processor and one MBEC setting, decided once: a class per
/// level, XU (bit 10), bit 7 and bits [5:0] (R, W, X, memory type), and per level and bit 7 the
/// bits that must be 0. The walk then sorts an entry with two table lookups instead of a chain of
/// branches for presence, each misconfiguration rule and the page size (they were half of every level).
/// A struct held inside the virtual CPU: the walk reaches the tables without a pointer to follow.
/// </summary>
internal readonly struct EptEntryClasses
{
    // Classes per level: 256, by XU [7], bit 7 [6] and bits [5:0]. Levels 0, 6 and 7 are unused:
    // the powers of two let the lookups mask the index instead of checking bounds.
    private const int Levels = 8;
    private const int PerLevel = 256;
    private const int Keys = Levels * PerLevel;

    private readonly ClassTable classes;
    // Per level and bit 7 (level * 2 + bit 7): the bits that must be 0 in a present entry.
    private readonly ReservedTable reserved;

    private EptEntryClasses(TableKey cpu)
    {
        bool mbec = cpu.Mbec;
        // [51:N] reserved at every level.
        ulong aboveMaxPhyAddr = EptBits.AddressMask & ~EptBits.AddressMaskBelow(cpu.MaxPhyAddr);
        for (EptLevel level = EptLevel.Pte; level <= EptLevel.Pml5e; level++)
        {
            foreach (bool largePage in (ReadOnlySpan<bool>)[false, true])
            {
                reserved[ReservedIndex(level, largePage ? EptBits.LargePage : 0)] = aboveMaxPhyAddr | ReservedBits(level, largePage, cpu);
                // EPT-WALK-2/3: a PTE maps a 4 KiB page, a PDE or PDPTE with bit 7 set a 2 MiB or 1 GiB page.
                bool isPage = level == EptLevel.Pte || ((level == EptLevel.Pde || level == EptLevel.Pdpte) && largePage);
                // The memory type (EPT-MISCONFIG-5) counts where the entry maps a page; elsewhere its bits are reserved.
                bool hasMemoryType = level == EptLevel.Pte || (LevelGeometry.CanMapPage(level) && largePage);
                for (ulong low = 0; low < 128; low++)
                {
                    ulong value = (low & 63) | (largePage ? EptBits.LargePage : 0) | ((low & 64) != 0 ? EptBits.UserModeExecute : 0);
                    EptEntryClass entryClass = !EptBits.IsPresent(value, mbec) ? EptEntryClass.NotPresent
                        : IsBadPermissionCombination(value, cpu, mbec) ? EptEntryClass.Misconfigured
                        : hasMemoryType && !EptBits.IsValidEptMemoryType(EptBits.DecodeType(value)) ? EptEntryClass.Misconfigured
                        : isPage ? EptEntryClass.Page
                        : EptEntryClass.Table;
                    classes[((int)level * PerLevel) + (int)LevelKey(value)] = entryClass;
                }
            }
        }
    }

    /// <summary>
    /// The tables for a processor and MBEC setting, built once per thread and kept for every later
    /// CPU that agrees on what the tables depend on: building them is 1,280 classifications, a few
    /// microseconds, and a fuzzing worker opens a virtual CPU for every case. The key holds only
    /// MAXPHYADDR, CAP[0], CAP[16], CAP[17] and MBEC, and the tables are built from the key
    /// alone (the constructor cannot see anything else), so two CPUs that differ elsewhere (A/D, 5-level walks, EPTP types…) share them: generated
    /// cases draw a few hundred distinct CPUs but a few dozen distinct tables.
    /// </summary>
    public static EptEntryClasses For(CpuCapabilities cpu, bool mbec)
    {
        var key = new TableKey(cpu.MaxPhyAddr, cpu.ExecuteOnly, cpu.Page2M, cpu.Page1G, mbec);
        Dictionary<TableKey, Built> cache = builtOnThread ??= [];
        if (cache.TryGetValue(key, out Built? built))
        {
            return built.Classes;
        }

        if (cache.Count >= CachedSets)
        {
            // MAXPHYADDR is bounded by the case format, so this only guards a caller that is not.
            cache.Clear();
        }

        built = new Built(new EptEntryClasses(key));
        cache.Add(key, built);
        return built.Classes;
    }

    private const int CachedSets = 512;

    [ThreadStatic]
    private static Dictionary<TableKey, Built>? builtOnThread;

    /// <summary>What the tables depend on: MAXPHYADDR, CAP[0], CAP[16], CAP[17] and MBEC.</summary>
    private readonly record struct TableKey(int MaxPhyAddr, bool ExecuteOnly, bool Page2M, bool Page1G, bool Mbec);

    private sealed class Built(EptEntryClasses classes)
    {
        public readonly EptEntryClasses Classes = classes;
    }

    /// <summary>The tables of one level, for a walk that moves down the levels with <see cref="LevelClasses.Down"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public LevelClasses At(EptLevel level) => new(
        ref Unsafe.Add(ref Unsafe.AsRef(in classes[0]), ((int)level & (Levels - 1)) * PerLevel),
        ref Unsafe.Add(ref Unsafe.AsRef(in reserved[0]), ((int)level & (Levels - 1)) * 2));

    /// <summary>
    /// One level's part of the tables, found once per walk instead of from the level at every
    /// entry: the entry's own bits are the whole key.
    /// </summary>
    internal ref struct LevelClasses(ref EptEntryClass levelClasses, ref ulong levelReserved)
    {
        private ref EptEntryClass classes = ref levelClasses;
        private ref ulong reserved = ref levelReserved;

        /// <summary>The class of <paramref name="value"/> read at this level.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly EptEntryClass Classify(ulong value)
        {
            // Native-sized offsets: no sign extension of either index.
            EptEntryClass entryClass = Unsafe.Add(ref classes, (nuint)LevelKey(value));
            // Reserved bits misconfigure a present entry (EPT-MISCONFIG-4/6); a not-present one stays a violation.
            return (value & Unsafe.Add(ref reserved, (nuint)(value >> 7) & 1)) != 0 && entryClass != EptEntryClass.NotPresent ? EptEntryClass.Misconfigured : entryClass;
        }

        /// <summary>To the tables of the level below (never below level 1: a walk stops at a PTE).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Down()
        {
            classes = ref Unsafe.Subtract(ref classes, PerLevel);
            reserved = ref Unsafe.Subtract(ref reserved, 2);
        }
    }

    // XU [7], bit 7 [6], bits [5:0]: one bit-extract where the processor has a fast one.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong LevelKey(ulong value) => FastBitExtract ? LevelKeyByBitExtract(value) : LevelKeyByShifts(value);

    internal const ulong LevelKeyBits = EptBits.UserModeExecute | EptBits.LargePage | 63;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong LevelKeyByBitExtract(ulong value) => Bmi2.X64.ParallelBitExtract(value, LevelKeyBits);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong LevelKeyByShifts(ulong value) => (value & 63) | ((value & EptBits.LargePage) >> 1) | ((value & EptBits.UserModeExecute) >> 3);

    // A constant once the walk is compiled at full optimization. AMD before Zen 3 (family 19h)
    // and Hygon run PEXT in microcode, tens of cycles: there the shifts are faster.
    private static readonly bool FastBitExtract = Bmi2.X64.IsSupported && !SlowBitExtract();

    private static bool SlowBitExtract()
    {
        (_, int vendor, _, _) = X86Base.CpuId(0, 0);
        // "Auth" (AuthenticAMD), "Hygo" (HygonGenuine): the first four vendor bytes, in EBX.
        if (vendor is not (0x68747541 or 0x6F677948))
        {
            return false;
        }

        (int signature, _, _, _) = X86Base.CpuId(1, 0);
        int family = (signature >> 8) & 0xF;
        return (family == 0xF ? family + ((signature >> 20) & 0xFF) : family) < 0x19;
    }

    private static int ReservedIndex(EptLevel level, ulong value) => ((int)level * 2) + (int)((value & EptBits.LargePage) >> 7);

    // EPT-MISCONFIG-1..3, for an entry's permission bits alone.
    private static bool IsBadPermissionCombination(ulong value, TableKey cpu, bool mbec)
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
    private static ulong ReservedBits(EptLevel level, bool largePage, TableKey cpu)
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

    [InlineArray(Keys)]
    private struct ClassTable
    {
        private EptEntryClass first;
    }

    [InlineArray(Levels * 2)]
    private struct ReservedTable
    {
        private ulong first;
    }
}

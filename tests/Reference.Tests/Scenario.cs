using EptFuzz.Reference;

namespace EptFuzz.Reference.Tests;

/// <summary>
/// Builds EPT tables (and, when asked, 4-level guest tables) in a sparse host memory, then makes
/// model requests against them. EPT tables live at host-physical 16 MB and up; guest tables at
/// guest-physical 2 MB and up, identity-mapped through EPT with every permission.
/// </summary>
internal sealed class Scenario
{
    public const ulong R = 1, W = 2, X = 4, XU = 1UL << 10;
    public const ulong Rwx = R | W | X;
    public const ulong LargePage = 1UL << 7;
    public const ulong IgnorePat = 1UL << 6;
    public const ulong Accessed = 1UL << 8, Dirty = 1UL << 9;

    // Guest paging-entry bits.
    public const ulong GP = 1, GRW = 2, GUS = 4, GPWT = 8, GPCD = 16, GA = 32, GD = 64, GPS = 128;
    public const ulong GXD = 1UL << 63;

    public const ulong GuestTablesGpa = 0x20_0000;
    private const ulong EptTablesHpa = 0x100_0000;

    private ulong nextEptTable;
    private ulong nextGuestTable;

    public Scenario(int levels = 4, bool accessedDirty = false, bool mbec = false, ProcessorCapabilities? capabilities = null)
    {
        Levels = levels;
        Root = EptTablesHpa;
        nextEptTable = EptTablesHpa + 0x1000;
        AccessedDirty = accessedDirty;
        Controls = new VmExecutionControls(mbec);
        Capabilities = capabilities ?? new ProcessorCapabilities { ModeBasedExecuteControl = mbec, PageWalkLength5 = levels == 5 };
    }

    public SparseMemory Memory { get; } = new();

    public int Levels { get; }

    public ulong Root { get; }

    public bool AccessedDirty { get; }

    public ProcessorCapabilities Capabilities { get; init; }

    public VmExecutionControls Controls { get; init; }

    public GuestPagingState Guest { get; private set; } = GuestPagingState.Off;

    /// <summary>Raw EPTP override; null: WB, this walk length, this A/D setting, <see cref="Root"/>.</summary>
    public ulong? RawEptp { get; init; }

    public Eptp Eptp => RawEptp is { } raw ? new Eptp(raw) : Eptp.Create(new Hpa(Root), 6, Levels, AccessedDirty);

    /// <summary>Default leaf bits: every permission (XU too, ignored without MBEC), memory type WB.</summary>
    public static ulong Leaf(ulong permissions = Rwx | XU, byte memoryType = 6) => permissions | ((ulong)memoryType << 3);

    /// <summary>Maps one page of <paramref name="size"/>; missing tables are created with <paramref name="upper"/> permissions.</summary>
    public Scenario Map(ulong gpa, ulong hpa, PageSize size = PageSize.Size4K, ulong? leaf = null, ulong upper = Rwx | XU)
    {
        var leafLevel = (Level)(byte)size;
        ulong table = Root;
        for (var level = (Level)Levels; level > leafLevel; level--)
        {
            var address = new Hpa(table | (LevelGeometry.Index(gpa, level) * 8));
            ulong entry = Memory.Read(address);
            if (entry == 0)
            {
                entry = nextEptTable | upper;
                nextEptTable += 0x1000;
                Memory.Write(address, entry);
            }

            table = entry & EptEntryFormat.AddressBits;
        }

        ulong value = hpa | (leaf ?? Leaf()) | (size == PageSize.Size4K ? 0 : LargePage);
        Memory.Write(new Hpa(table | (LevelGeometry.Index(gpa, leafLevel) * 8)), value);
        return this;
    }

    /// <summary>The host-physical address of the EPT entry at <paramref name="level"/> for <paramref name="gpa"/> (the tables must exist).</summary>
    public Hpa EntryAddress(ulong gpa, Level level)
    {
        EntryLookup lookup = EptModel.FindEntry(Eptp.Create(new Hpa(Root), 6, Levels), new VmExecutionControls(true), Memory, new Gpa(gpa), level);
        return lookup.Reached ? lookup.Address : throw new InvalidOperationException($"no EPT entry at {level} for 0x{gpa:x}");
    }

    public ulong Entry(ulong gpa, Level level) => Memory.Read(EntryAddress(gpa, level));

    public Scenario SetEntry(ulong gpa, Level level, ulong value)
    {
        Memory.Write(EntryAddress(gpa, level), value);
        return this;
    }

    public Scenario EditEntry(ulong gpa, Level level, ulong set = 0, ulong clear = 0) =>
        SetEntry(gpa, level, (Entry(gpa, level) & ~clear) | set);

    /// <summary>Turns on 4-level guest paging with an empty PML4 table.</summary>
    public Scenario WithGuestPaging(bool wp = true, bool nxe = false, bool smep = false, ulong pat = GuestPagingState.PowerOnPat, bool cacheDisable = false)
    {
        if (!Guest.Paging)
        {
            nextGuestTable = GuestTablesGpa + 0x1000;
            Map(GuestTablesGpa, GuestTablesGpa);
        }

        Guest = new GuestPagingState
        {
            Paging = true, Cr3 = GuestTablesGpa, WriteProtect = wp, NoExecuteEnable = nxe, Smep = smep, Pat = pat, CacheDisable = cacheDisable,
        };
        return this;
    }

    /// <summary>Maps linear <paramref name="gla"/> to <paramref name="gpa"/> in the guest tables; upper entries get <paramref name="upper"/>.</summary>
    public Scenario GuestMap(ulong gla, ulong gpa, ulong leafFlags, PageSize size = PageSize.Size4K, ulong upper = GP | GRW | GUS)
    {
        var leafLevel = (Level)(byte)size;
        ulong table = GuestTablesGpa;
        for (var level = Level.Pml4e; level > leafLevel; level--)
        {
            var address = new Hpa(table | (LevelGeometry.Index(gla, level) * 8));
            ulong entry = Memory.Read(address);
            if (entry == 0)
            {
                entry = nextGuestTable | upper;
                Map(nextGuestTable, nextGuestTable);
                nextGuestTable += 0x1000;
                Memory.Write(address, entry);
            }

            table = entry & 0x000F_FFFF_FFFF_F000;
        }

        Memory.Write(new Hpa(table | (LevelGeometry.Index(gla, leafLevel) * 8)), gpa | leafFlags | (size == PageSize.Size4K ? 0 : GPS));
        return this;
    }

    /// <summary>The host (= guest-physical) address of the guest entry at <paramref name="level"/> for <paramref name="gla"/>.</summary>
    public ulong GuestEntryAddress(ulong gla, Level level)
    {
        ulong table = GuestTablesGpa;
        for (var current = Level.Pml4e; current > level; current--)
        {
            table = Memory.Read(new Hpa(table | (LevelGeometry.Index(gla, current) * 8))) & 0x000F_FFFF_FFFF_F000;
        }

        return table | (LevelGeometry.Index(gla, level) * 8);
    }

    public Scenario EditGuestEntry(ulong gla, Level level, ulong set = 0, ulong clear = 0)
    {
        var address = new Hpa(GuestEntryAddress(gla, level));
        Memory.Write(address, (Memory.Read(address) & ~clear) | set);
        return this;
    }

    public TranslationRequest Request(GuestAccess access) => new(Capabilities, Eptp, Controls, Guest, Memory, access);

    public Evaluation Run(GuestAccess access) => EptModel.Evaluate(Request(access));
}

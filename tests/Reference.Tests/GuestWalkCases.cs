using EptFuzz.Reference;
using EptFuzz.Reference.Rules;
using static EptFuzz.Reference.Tests.Expect;
using static EptFuzz.Reference.Tests.Scenario;

namespace EptFuzz.Reference.Tests;

/// <summary>
/// The guest's own 4-level walk through EPT (EPT-GWALK-*, EPT-ORDER-2, EPT-VIOL-5), guest page
/// faults, and the qualification of violations on guest paging-structure accesses with EPT A/D
/// on and off.
/// </summary>
internal static class GuestWalkCases
{
    private const ulong Gla = 0x1234_5678;
    private const ulong PageGla = 0x1234_5000;
    private const ulong Gpa = 0x40_0000;
    private const ulong Hpa = 0x7_7700_0000;

    // Guest tables are allocated in walk order: PML4 at 2 MB, then PDPT, PD, PT.
    private const ulong Pml4Gpa = GuestTablesGpa, PdptGpa = GuestTablesGpa + 0x1000, PdGpa = GuestTablesGpa + 0x2000, PtGpa = GuestTablesGpa + 0x3000;

    private static Scenario Paged(ulong leafFlags = GP | GRW | GUS, bool accessedDirty = false, bool nxe = false, bool smep = false, bool wp = true, ProcessorCapabilities? capabilities = null, bool mbec = false) =>
        new Scenario(accessedDirty: accessedDirty, mbec: mbec, capabilities: capabilities)
            .Map(Gpa, Hpa)
            .WithGuestPaging(wp: wp, nxe: nxe, smep: smep)
            .GuestMap(PageGla, Gpa, leafFlags);

    /// <summary>The GPA of the guest entry at <paramref name="level"/> for <see cref="Gla"/>.</summary>
    private static ulong EntryGpa(Level level) => level switch
    {
        Level.Pml4e => Pml4Gpa | (LevelGeometry.Index(Gla, Level.Pml4e) * 8),
        Level.Pdpte => PdptGpa | (LevelGeometry.Index(Gla, Level.Pdpte) * 8),
        Level.Pde => PdGpa | (LevelGeometry.Index(Gla, Level.Pde) * 8),
        _ => PtGpa | (LevelGeometry.Index(Gla, Level.Pte) * 8),
    };

    public static IEnumerable<ModelCase> Rows()
    {
        // EPT-SCOPE-2 / EPT-ORDER-2: each guest entry is read through EPT, then the final GPA.
        // Vol 3A §4.8: the walk sets A in every entry (upper entries are P|RW|US, the leaf as given).
        const ulong upper = GP | GRW | GUS;
        var readWrites = new Dictionary<ulong, ulong>
        {
            [EntryGpa(Level.Pml4e)] = PdptGpa | upper | GA,
            [EntryGpa(Level.Pdpte)] = PdGpa | upper | GA,
            [EntryGpa(Level.Pde)] = PtGpa | upper | GA,
            [EntryGpa(Level.Pte)] = Gpa | upper | GA,
        };
        yield return new("GuestRead_SetsGuestAccessed_Translated", Paged(), Linear(AccessType.Read, Gla),
            Translated(Gpa | 0x678, Hpa | 0x678), RuleId.EptScope2, readWrites);
        var writeWrites = new Dictionary<ulong, ulong>(readWrites) { [EntryGpa(Level.Pte)] = Gpa | upper | GA | GD };
        yield return new("GuestWrite_SetsGuestDirty_Translated", Paged(), Linear(AccessType.Write, Gla, cpl: 3),
            Translated(Gpa | 0x678, Hpa | 0x678), RuleId.EptGwalk2, writeWrites);

        // Guest page faults (Vol 3A §4.7): error code P, W/R, U/S, RSVD, I/D.
        yield return new("GuestPteNotPresent_Read_PageFault", Paged(leafFlags: 0), Linear(AccessType.Read, Gla), PageFault(0), RuleId.EptOrder2, new Dictionary<ulong, ulong>());
        yield return new("GuestPteNotPresent_UserWrite_PageFault", Paged(leafFlags: 0), Linear(AccessType.Write, Gla, cpl: 3), PageFault(6), RuleId.EptOrder2);
        yield return new("GuestPml4eBit7_Reserved_PageFault", Paged().EditGuestEntry(Gla, Level.Pml4e, set: GPS), Linear(AccessType.Read, Gla), PageFault(9), RuleId.EptOrder2);
        yield return new("GuestPdeAddressBit51_Reserved_PageFault", Paged().EditGuestEntry(Gla, Level.Pde, set: 1UL << 51), Linear(AccessType.Write, Gla), PageFault(11), RuleId.EptOrder2);
        yield return new("GuestXdWithoutNxe_Reserved_PageFault", Paged(leafFlags: GP | GRW | GUS | GXD), Linear(AccessType.Read, Gla, cpl: 3), PageFault(13), RuleId.EptOrder2);
        yield return new("GuestSupervisorPage_UserRead_PageFault", Paged(leafFlags: GP | GRW), Linear(AccessType.Read, Gla, cpl: 3), PageFault(5), RuleId.EptOrder2);
        yield return new("GuestReadOnlyPage_SupervisorWriteWp1_PageFault", Paged(leafFlags: GP | GUS), Linear(AccessType.Write, Gla), PageFault(3), RuleId.EptOrder2);
        yield return new("GuestReadOnlyPage_SupervisorWriteWp0_Translated", Paged(leafFlags: GP | GUS, wp: false), Linear(AccessType.Write, Gla), Translated(Gpa | 0x678, Hpa | 0x678), RuleId.EptGwalk2);
        yield return new("GuestXdPage_Fetch_PageFault", Paged(leafFlags: GP | GRW | GUS | GXD, nxe: true), Linear(AccessType.InstructionFetch, Gla), PageFault(0x11), RuleId.EptOrder2);
        yield return new("GuestUserPage_SmepSupervisorFetch_PageFault", Paged(smep: true), Linear(AccessType.InstructionFetch, Gla), PageFault(0x11), RuleId.EptOrder2);
        yield return new("Guest2MPdeBit13_Reserved_PageFault",
            new Scenario().Map(Gpa, Hpa).WithGuestPaging().GuestMap(0x4000_0000, 0x20_0000 | (1UL << 13), GP | GRW, PageSize.Size2M),
            Linear(AccessType.Read, 0x4000_0000), PageFault(9), RuleId.EptOrder2);

        // EPT-ORDER-2: the guest #PF comes before any EPT access to the final GPA (which is unmapped here).
        yield return new("GuestNotPresent_FinalGpaUnmapped_PageFault",
            new Scenario().WithGuestPaging().GuestMap(PageGla, 0x7000_0000, 0), Linear(AccessType.Read, Gla), PageFault(0), RuleId.EptOrder2);

        // EPT-ORDER-2: the EPT exit on a guest entry's GPA comes before looking at the guest entry.
        yield return new("GuestPtPageEptNotPresent_NotPresentPte_Violation",
            Paged(leafFlags: 0).SetEntry(PtGpa, Level.Pte, 0), Linear(AccessType.Read, Gla),
            Violation(EntryGpa(Level.Pte), Gla, Read | GlaValid), RuleId.EptOrder2);
        yield return new("GuestPdptPageEptType7_Misconfig",
            Paged().EditEntry(PdptGpa, Level.Pte, set: 7 << 3), Linear(AccessType.Read, Gla), Misconfig(EntryGpa(Level.Pdpte)), RuleId.EptOrder2);

        // EPT-GWALK-1: a violation while reading a guest entry: bit 0 (A/D off) or bits 0 and 1
        // (A/D on), bit 7 = 1, bit 8 = 0, never bit 2 even for a fetch; GPA = the entry's GPA.
        yield return new("GuestPdptPageNotPresent_AdOff_Read_Violation",
            Paged().SetEntry(PdptGpa, Level.Pte, 0), Linear(AccessType.Read, Gla),
            Violation(EntryGpa(Level.Pdpte), Gla, Read | GlaValid), RuleId.EptGwalk1);
        yield return new("GuestPdptPageNotPresent_AdOff_Fetch_Violation",
            Paged().SetEntry(PdptGpa, Level.Pte, 0), Linear(AccessType.InstructionFetch, Gla),
            Violation(EntryGpa(Level.Pdpte), Gla, Read | GlaValid), RuleId.EptGwalk1);
        yield return new("GuestPdptPageNotPresent_AdOn_Read_Violation",
            Paged(accessedDirty: true).SetEntry(PdptGpa, Level.Pte, 0), Linear(AccessType.Read, Gla),
            Violation(EntryGpa(Level.Pdpte), Gla, Read | Write | GlaValid), RuleId.EptGwalk1);
        yield return new("GuestPdptPageNotPresent_AdOn_Fetch_Violation",
            Paged(accessedDirty: true).SetEntry(PdptGpa, Level.Pte, 0), Linear(AccessType.InstructionFetch, Gla),
            Violation(EntryGpa(Level.Pdpte), Gla, Read | Write | GlaValid), RuleId.EptGwalk1);

        // EPT-VIOL-5: with EPT A/D on, a read-only guest table page cannot even be read by the walk.
        yield return new("GuestPtPageReadOnly_AdOn_Read_Violation",
            Paged(accessedDirty: true).EditEntry(PtGpa, Level.Pte, clear: W | X | XU), Linear(AccessType.Read, Gla),
            Violation(EntryGpa(Level.Pte), Gla, Read | Write | Readable | GlaValid), RuleId.EptViol5);

        // EPT-GWALK-2: with A/D off a read-only guest table page can be read, but setting the
        // guest A flag is a write: violation 0x8B (KUT ept_access_test_paddr_read_only_ad_disabled).
        // The A flags of the levels above were written before it and stay.
        var upperAccessed = new Dictionary<ulong, ulong>
        {
            [EntryGpa(Level.Pml4e)] = PdptGpa | upper | GA,
            [EntryGpa(Level.Pdpte)] = PdGpa | upper | GA,
            [EntryGpa(Level.Pde)] = PtGpa | upper | GA,
        };
        yield return new("GuestPtPageReadOnly_AdOff_GuestAClear_Read_Violation",
            Paged().EditEntry(PtGpa, Level.Pte, clear: W | X | XU), Linear(AccessType.Read, Gla),
            Violation(EntryGpa(Level.Pte), Gla, Read | Write | Readable | GlaValid), RuleId.EptGwalk2, upperAccessed);
        yield return new("GuestPtPageReadOnly_AdOff_GuestASet_Read_Translated",
            Paged(leafFlags: GP | GRW | GUS | GA).EditEntry(PtGpa, Level.Pte, clear: W | X | XU), Linear(AccessType.Read, Gla),
            Translated(Gpa | 0x678, Hpa | 0x678), RuleId.EptGwalk1);
        yield return new("GuestPtPageReadOnly_AdOff_GuestDClear_Write_Violation",
            Paged(leafFlags: GP | GRW | GUS | GA).EditEntry(PtGpa, Level.Pte, clear: W | X | XU), Linear(AccessType.Write, Gla),
            Violation(EntryGpa(Level.Pte), Gla, Read | Write | Readable | GlaValid), RuleId.EptGwalk2);

        // EPT-XO-1: an execute-only guest table page cannot be read by the walk (bit 3 = 0).
        yield return new("GuestPdPageExecuteOnly_Read_Violation",
            Paged().EditEntry(PdGpa, Level.Pte, clear: R | W | XU), Linear(AccessType.Read, Gla),
            Violation(EntryGpa(Level.Pde), Gla, Read | Executable | GlaValid), RuleId.EptXo1);

        // EPT-EXIT-2: advanced information describes the linear address: user-mode (U/S = 1 at
        // every level), read/write page (R/W AND), execute-disable page (XD OR, with NXE).
        var advanced = new ProcessorCapabilities { AdvancedExitInformation = true };
        yield return new("AdvancedInfo_UserReadOnlyXdPage_Read_Violation",
            Paged(leafFlags: GP | GUS | GXD, nxe: true, capabilities: advanced).EditEntry(Gpa, Level.Pte, clear: R | W), Linear(AccessType.Read, Gla, cpl: 3),
            Violation(Gpa | 0x678, Gla, Read | Executable | GlaValid | Final | UserAddress | XdPage), RuleId.EptExit2);
        yield return new("AdvancedInfo_SupervisorWritablePage_Fetch_Violation",
            Paged(leafFlags: GP | GRW, capabilities: advanced).EditEntry(Gpa, Level.Pte, clear: X), Linear(AccessType.InstructionFetch, Gla),
            Violation(Gpa | 0x678, Gla, Fetch | Readable | Writable | GlaValid | Final | RwPage), RuleId.EptExit2);
        yield return new("AdvancedInfo_GuestEntryAccess_NoBits9To11_Violation",
            Paged(capabilities: advanced).SetEntry(PdGpa, Level.Pte, 0), Linear(AccessType.Read, Gla, cpl: 3),
            Violation(EntryGpa(Level.Pde), Gla, Read | GlaValid), RuleId.EptGwalk1);

        // EPT-MBEC-3: U/S = 1 at every level makes the address user-mode: a CPL-3 fetch needs XU.
        var mbecCaps = new ProcessorCapabilities { ModeBasedExecuteControl = true };
        yield return new("Mbec_UserAddress_XuOnlyPage_Fetch_Translated",
            Paged(mbec: true, capabilities: mbecCaps).EditEntry(Gpa, Level.Pte, clear: X), Linear(AccessType.InstructionFetch, Gla, cpl: 3),
            Translated(Gpa | 0x678, Hpa | 0x678, permissions: EptPermissions.ReadAccess | EptPermissions.WriteAccess | EptPermissions.UserModeExecute), RuleId.EptMbec3);
        yield return new("Mbec_UserAddress_XsOnlyPage_SupervisorFetch_Violation",
            Paged(mbec: true, capabilities: mbecCaps).EditEntry(Gpa, Level.Pte, clear: XU), Linear(AccessType.InstructionFetch, Gla),
            Violation(Gpa | 0x678, Gla, Fetch | Readable | Writable | Executable | GlaValid | Final), RuleId.EptMbec4);
        yield return new("Mbec_SupervisorAddress_XuOnlyPage_Fetch_Violation",
            Paged(leafFlags: GP | GRW, mbec: true, capabilities: mbecCaps).EditEntry(Gpa, Level.Pte, clear: X), Linear(AccessType.InstructionFetch, Gla),
            Violation(Gpa | 0x678, Gla, Fetch | Readable | Writable | UserExecutable | GlaValid | Final), RuleId.EptMbec6);
    }
}

using EptFuzz.Reference;
using EptFuzz.Reference.Rules;
using static EptFuzz.Reference.Tests.Expect;
using static EptFuzz.Reference.Tests.Scenario;

namespace EptFuzz.Reference.Tests;

/// <summary>The EPT walk: levels, presence, large pages, precedence, ignored bits.</summary>
internal static class WalkCases
{
    private const ulong Gpa = 0x40_0000;
    private const ulong Hpa = 0x1234_5000;

    private static Scenario Mapped(int levels = 4, bool mbec = false, ProcessorCapabilities? capabilities = null) =>
        new Scenario(levels, mbec: mbec, capabilities: capabilities).Map(Gpa, Hpa);

    public static IEnumerable<ModelCase> Rows()
    {
        // EPT-WALK-1/2: a 4 KB page: PA[51:12] from the PTE, PA[11:0] from the GPA.
        yield return new("Read4K_Translated", Mapped(), ReadAt(Gpa + 0x123), Translated(Gpa + 0x123, Hpa + 0x123), RuleId.EptWalk2);
        yield return new("Walk4_UsesGpaBits47To0_Translated", Mapped(), ReadAt(Gpa), Translated(Gpa, Hpa), RuleId.EptWalk1);

        // EPT-WALK-3: a 5-level walk indexes a PML5 table with GPA bits 56:48.
        const ulong high = 0x3_0000_0040_0000;
        yield return new("Walk5_HighGpa_Translated", new Scenario(5).Map(high, Hpa), WriteAt(high + 8), Translated(high + 8, Hpa + 8), RuleId.EptWalk3);

        // EPT-WALK-4 / EPT-VIOL-6: a 4-level walk with GPA[51:48] != 0 is a violation, bits 5:3 = 0.
        yield return new("Walk4_GpaBit48Set_Violation", Mapped(), ReadAt(Gpa | (1UL << 48)), PhysicalViolation(Gpa | (1UL << 48), Read), RuleId.EptViol6);
        yield return new("Walk4_GpaBit51Set_Violation", Mapped(), FetchAt(Gpa | (1UL << 51)), PhysicalViolation(Gpa | (1UL << 51), Fetch), RuleId.EptWalk4);

        // EPT-VIOL-1 / EPT-PRESENT-1 at each level; the AND with the not-present entry zeroes bits 5:3.
        yield return new("Pml4eNotPresent_Violation", new Scenario(), ReadAt(Gpa), PhysicalViolation(Gpa, Read), RuleId.EptViol1);
        yield return new("PdpteNotPresent_Violation", Mapped(), WriteAt(0x4000_0000), PhysicalViolation(0x4000_0000, Write), RuleId.EptPresent1);
        yield return new("PdeNotPresent_Violation", Mapped(), FetchAt(0x60_0000), PhysicalViolation(0x60_0000, Fetch), RuleId.EptViol1);
        yield return new("PteNotPresent_Violation", Mapped(), ReadAt(Gpa + 0x1000), PhysicalViolation(Gpa + 0x1000, Read), RuleId.EptViol1);
        yield return new("Pml5eNotPresent_Violation", new Scenario(5), ReadAt(Gpa), PhysicalViolation(Gpa, Read), RuleId.EptViol1);

        // EPT-PRESENT-2: bits 62:3 of a not-present entry are ignored.
        yield return new("NotPresentPteWithAddressAndType_Violation", Mapped().SetEntry(Gpa, Level.Pte, Hpa | (6 << 3) | Accessed), ReadAt(Gpa), PhysicalViolation(Gpa, Read), RuleId.EptPresent2);

        // EPT-ORDER-1a: presence is decided first; a not-present entry with "misconfigured" bits is a violation.
        yield return new("NotPresentPteWithType7_Violation", Mapped().SetEntry(Gpa, Level.Pte, Hpa | (7 << 3)), ReadAt(Gpa), PhysicalViolation(Gpa, Read), RuleId.EptOrder1a);
        yield return new("NotPresentPml4eWithBit7_Violation", Mapped().SetEntry(Gpa, Level.Pml4e, LargePage | 0x100_1000), ReadAt(Gpa), PhysicalViolation(Gpa, Read), RuleId.EptOrder1a);

        // EPT-PRESENT-1: without MBEC bit 10 is ignored, so an XU-only entry is not present.
        yield return new("XuOnlyPteWithoutMbec_Violation", Mapped().SetEntry(Gpa, Level.Pte, Hpa | XU | (6 << 3)), FetchAt(Gpa), PhysicalViolation(Gpa, Fetch), RuleId.EptPresent1);

        // EPT-MBEC-5: with MBEC an XU-only entry is present; a CR0.PG = 0 fetch is user-mode and needs XU.
        yield return new("XuOnlyPteWithMbec_UserFetch_Translated", Mapped(mbec: true).SetEntry(Gpa, Level.Pte, Hpa | XU | (6 << 3)), FetchAt(Gpa),
            Translated(Gpa, Hpa, permissions: EptPermissions.UserModeExecute), RuleId.EptMbec5);

        // EPT-LARGE-1, EPT-ENTRY-3/4: large leaves take their low address bits from the GPA.
        yield return new("Read2M_Translated", new Scenario().Map(Gpa, 0x8000_0000, PageSize.Size2M), ReadAt(0x45_6788),
            Translated(0x45_6788, 0x8005_6788, PageSize.Size2M), RuleId.EptEntry4);
        yield return new("Write1G_Translated", new Scenario().Map(0x4000_0000, 0x1_0000_0000, PageSize.Size1G), WriteAt(0x4123_4560),
            Translated(0x4123_4560, 0x1_0123_4560, PageSize.Size1G), RuleId.EptEntry3);
        yield return new("Fetch2M_Translated", new Scenario().Map(Gpa, 0x8000_0000, PageSize.Size2M), FetchAt(Gpa),
            Translated(Gpa, 0x8000_0000, PageSize.Size2M), RuleId.EptLarge1);
        yield return new("Pdpte1GWithoutSupport_Misconfig", new Scenario(capabilities: new ProcessorCapabilities { Pdpte1GPages = false }).Map(0x4000_0000, 0x1_0000_0000, PageSize.Size1G),
            ReadAt(0x4000_0000), Misconfig(0x4000_0000), RuleId.EptMisconfig4);
        yield return new("Pde2MWithoutSupport_Misconfig", new Scenario(capabilities: new ProcessorCapabilities { Pde2MPages = false }).Map(Gpa, 0x8000_0000, PageSize.Size2M),
            ReadAt(Gpa), Misconfig(Gpa), RuleId.EptLarge1);

        // EPT-ENTRY-2: a PDE referencing a table (bit 7 = 0) is walked through.
        yield return new("PdeReferencesTable_Translated", Mapped(), ReadAt(Gpa), Translated(Gpa, Hpa), RuleId.EptEntry2);

        // EPT-ORDER-1: a read-only PML4E does not stop the walk; the PTE's invalid type decides (misconfig wins).
        yield return new("ReadOnlyPml4e_Type7Pte_Write_Misconfig", Mapped().EditEntry(Gpa, Level.Pml4e, clear: W | X).EditEntry(Gpa, Level.Pte, set: 7 << 3),
            WriteAt(Gpa), Misconfig(Gpa), RuleId.EptOrder1);
        yield return new("ReadOnlyPml4e_NotPresentPte_Write_Violation", Mapped().EditEntry(Gpa, Level.Pml4e, clear: W | X).SetEntry(Gpa, Level.Pte, 0),
            WriteAt(Gpa), PhysicalViolation(Gpa, Write), RuleId.EptOrder1);
        yield return new("ReadOnlyPml4e_Write_Violation", Mapped().EditEntry(Gpa, Level.Pml4e, clear: W | X),
            WriteAt(Gpa), PhysicalViolation(Gpa, Write | Readable), RuleId.EptViol3);

        // EPT-ORDER-3: several misconfiguration causes in one entry give the one exit.
        yield return new("WriteOnlyType7Pte_Misconfig", Mapped().SetEntry(Gpa, Level.Pte, Hpa | W | (7 << 3)), ReadAt(Gpa), Misconfig(Gpa), RuleId.EptOrder3);

        // EPT-ENTRY-6: ignored bits (11, 63:52 of non-leaves, 62:52 of leaves, 7 of a PTE) change nothing.
        yield return new("IgnoredBitsSet_Translated",
            Mapped().EditEntry(Gpa, Level.Pml4e, set: (1UL << 11) | (1UL << 63) | (0x3FUL << 52)).EditEntry(Gpa, Level.Pte, set: (1UL << 11) | LargePage | (1UL << 62) | (1UL << 57) | (1UL << 58) | (1UL << 61)),
            ReadAt(Gpa), Translated(Gpa, Hpa), RuleId.EptEntry6);
        yield return new("AccessedDirtyBitsWithoutEptAd_Translated", Mapped().EditEntry(Gpa, Level.Pte, set: Accessed | Dirty).EditEntry(Gpa, Level.Pde, set: Dirty),
            ReadAt(Gpa), Translated(Gpa, Hpa), RuleId.EptEntry6);

        // EPT-SSS-1: leaf bit 60 only matters to supervisor shadow-stack accesses with EPTP[7] = 1.
        yield return new("SupervisorShadowStackBit_Ignored_Translated", Mapped().EditEntry(Gpa, Level.Pte, set: 1UL << 60), WriteAt(Gpa), Translated(Gpa, Hpa), RuleId.EptSss1);

        // EPT-ENTRY-1: a PML4E references a table; EPT-ENTRY-5: the PTE maps the page.
        yield return new("Pml4eToPte_Fetch_Translated", Mapped(), FetchAt(Gpa), Translated(Gpa, Hpa), RuleId.EptEntry1);
        yield return new("Pte_Write_Translated", Mapped(), WriteAt(Gpa), Translated(Gpa, Hpa), RuleId.EptEntry5);

        // EPT-XO-1: an execute-only translation permits fetches only (bit 3 = 0 on a read).
        yield return new("ExecuteOnlyPte_Fetch_Translated", Mapped().SetEntry(Gpa, Level.Pte, Hpa | X | (6 << 3)), FetchAt(Gpa),
            Translated(Gpa, Hpa, permissions: EptPermissions.ExecuteAccess), RuleId.EptXo1);
        yield return new("ExecuteOnlyPte_Read_Violation", Mapped().SetEntry(Gpa, Level.Pte, Hpa | X | (6 << 3)), ReadAt(Gpa),
            PhysicalViolation(Gpa, Read | Executable), RuleId.EptXo1);

        // EPT-EXITQ-2: bits 3-5 are the AND over every level, not the leaf alone.
        yield return new("NoExecutePde_Fetch_Violation_AndOverLevels", Mapped().EditEntry(Gpa, Level.Pde, clear: X), FetchAt(Gpa),
            PhysicalViolation(Gpa, Fetch | Readable | Writable), RuleId.EptExitq2);

        // EPT-EXIT-2: advanced information on a CR0.PG = 0 access: user-mode, read/write, executable.
        yield return new("AdvancedInfo_PhysicalWrite_Violation", new Scenario(capabilities: new ProcessorCapabilities { AdvancedExitInformation = true }).Map(Gpa, Hpa, leaf: Leaf(R | X)),
            WriteAt(Gpa), PhysicalViolation(Gpa, Write | Readable | Executable | UserAddress | RwPage), RuleId.EptExit2);
    }
}

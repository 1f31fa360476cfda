using EptFuzz.Reference;
using EptFuzz.Reference.Rules;
using static EptFuzz.Reference.Tests.Expect;
using static EptFuzz.Reference.Tests.Scenario;

namespace EptFuzz.Reference.Tests;

/// <summary>EPT accessed and dirty flags (EPT-AD-1 … 6), with each row's exact writes.</summary>
internal static class AccessedDirtyCases
{
    private const ulong Gpa = 0x40_0000;
    private const ulong Hpa = 0x5555_5000;

    /// <summary>The entries of the walk for <paramref name="gpa"/> with <paramref name="leafFlags"/> added to the leaf and A to the rest.</summary>
    private static Dictionary<ulong, ulong> Flagged(Scenario scenario, ulong gpa, Level leaf, ulong leafFlags, Dictionary<ulong, ulong>? into = null)
    {
        into ??= [];
        for (var level = (Level)scenario.Levels; level >= leaf; level--)
        {
            ulong address = scenario.EntryAddress(gpa, level).Value;
            into[address] = scenario.Entry(gpa, level) | (level == leaf ? leafFlags : Accessed);
        }

        return into;
    }

    public static IEnumerable<ModelCase> Rows()
    {
        // EPT-AD-2: every entry the walk uses gets A.
        Scenario read = new Scenario(accessedDirty: true).Map(Gpa, Hpa);
        yield return new("EptAd_Read_SetsAccessedEveryLevel_Translated", read, ReadAt(Gpa), Translated(Gpa, Hpa), RuleId.EptAd2,
            Flagged(read, Gpa, Level.Pte, Accessed));

        Scenario read5 = new Scenario(5, accessedDirty: true).Map(Gpa, Hpa);
        yield return new("EptAd_Walk5Read_SetsAccessedOnPml5e_Translated", read5, ReadAt(Gpa), Translated(Gpa, Hpa), RuleId.EptAd2,
            Flagged(read5, Gpa, Level.Pte, Accessed));

        // EPT-AD-3: a write also sets D in the leaf (one write with A).
        Scenario write = new Scenario(accessedDirty: true).Map(Gpa, Hpa);
        yield return new("EptAd_Write_SetsDirtyOnLeaf_Translated", write, WriteAt(Gpa), Translated(Gpa, Hpa), RuleId.EptAd3,
            Flagged(write, Gpa, Level.Pte, Accessed | Dirty));
        Scenario large = new Scenario(accessedDirty: true).Map(Gpa, 0x8000_0000, PageSize.Size2M);
        yield return new("EptAd_Write2M_SetsDirtyOnPde_Translated", large, WriteAt(Gpa + 8), Translated(Gpa + 8, 0x8000_0008, PageSize.Size2M), RuleId.EptAd3,
            Flagged(large, Gpa, Level.Pde, Accessed | Dirty));

        // EPT-AD-5: flags already set are not written again; A set, D clear on a write: only D.
        Scenario preset = new Scenario(accessedDirty: true).Map(Gpa, Hpa, leaf: Leaf() | Accessed, upper: Rwx | XU | Accessed);
        yield return new("EptAd_AccessedAlreadySet_Read_NoWrites_Translated", preset, ReadAt(Gpa), Translated(Gpa, Hpa), RuleId.EptAd5, new Dictionary<ulong, ulong>());
        Scenario presetWrite = new Scenario(accessedDirty: true).Map(Gpa, Hpa, leaf: Leaf() | Accessed, upper: Rwx | XU | Accessed);
        yield return new("EptAd_AccessedSet_Write_SetsOnlyDirty_Translated", presetWrite, WriteAt(Gpa), Translated(Gpa, Hpa), RuleId.EptAd5,
            new Dictionary<ulong, ulong> { [presetWrite.EntryAddress(Gpa, Level.Pte).Value] = presetWrite.Entry(Gpa, Level.Pte) | Dirty });

        // EPT-AD-6: an access that fails sets nothing.
        yield return new("EptAd_WriteToReadOnly_Violation_NoWrites", new Scenario(accessedDirty: true).Map(Gpa, Hpa, leaf: Leaf(R)), WriteAt(Gpa),
            PhysicalViolation(Gpa, Write | Readable), RuleId.EptAd6, new Dictionary<ulong, ulong>());

        // EPT-AD-1: with EPTP[6] = 0 bits 8 and 9 are never written.
        yield return new("EptAdOff_Write_NoWrites_Translated", new Scenario().Map(Gpa, Hpa), WriteAt(Gpa), Translated(Gpa, Hpa), RuleId.EptAd1, new Dictionary<ulong, ulong>());

        // EPT-AD-4: with EPT A/D on, the guest walk's reads are writes: the EPT leaf of each guest
        // table page gets A and D; the final read sets only A; the guest entries get their A.
        const ulong gla = 0x1234_5000;
        Scenario paged = new Scenario(accessedDirty: true).Map(Gpa, Hpa).WithGuestPaging().GuestMap(gla, Gpa, GP | GRW | GUS);
        var expected = new Dictionary<ulong, ulong>();
        for (ulong page = GuestTablesGpa; page < GuestTablesGpa + 0x4000; page += 0x1000)
        {
            Flagged(paged, page, Level.Pte, Accessed | Dirty, expected);
        }

        Flagged(paged, Gpa, Level.Pte, Accessed, expected);
        for (var level = Level.Pml4e; level >= Level.Pte; level--)
        {
            ulong entry = paged.GuestEntryAddress(gla, level);
            expected[entry] = paged.Memory.Read(new Hpa(entry)) | GA;
        }

        yield return new("EptAd_GuestWalkRead_TablePagesDirty_Translated", paged, Linear(AccessType.Read, gla), Translated(Gpa, Hpa), RuleId.EptAd4, expected);

        // EPT-AD-6 with SEMANTICS.md: a guest #PF ends the probe, but the guest-entry reads before it
        // were performed, so their EPT flags stay; no guest flag is set and the final GPA is untouched.
        Scenario faulting = new Scenario(accessedDirty: true).Map(Gpa, Hpa).WithGuestPaging().GuestMap(gla, Gpa, 0);
        var tableFlags = new Dictionary<ulong, ulong>();
        for (ulong page = GuestTablesGpa; page < GuestTablesGpa + 0x4000; page += 0x1000)
        {
            Flagged(faulting, page, Level.Pte, Accessed | Dirty, tableFlags);
        }

        yield return new("EptAd_GuestPteNotPresent_TablePagesFlagged_PageFault", faulting, Linear(AccessType.Read, gla), PageFault(0), RuleId.EptAd4, tableFlags);
    }
}

using EptFuzz.Reference;
using static EptFuzz.Reference.Tests.Scenario;

namespace EptFuzz.Reference.Tests;

/// <summary>The order of <see cref="Evaluation.Walk"/> for a linear access (SEMANTICS.md "Walk").</summary>
public sealed class WalkOrderTests
{
    private const ulong Gla = 0x1234_5000;
    private const ulong Gpa = 0x40_0000;

    private static string Shape(Evaluation evaluation) =>
        string.Concat(evaluation.Walk.Select(step => step.Structure == Structure.Ept ? "e" : "G"));

    [Fact]
    public void GuestAccessedSet_EachGuestEntryAfterItsEptWalk_FinalWalkLast()
    {
        Scenario scenario = new Scenario().Map(Gpa, 0x9000).WithGuestPaging().GuestMap(Gla, Gpa, GP | GRW | GUS | GA, upper: GP | GRW | GUS | GA);
        Evaluation evaluation = scenario.Run(Expect.Linear(AccessType.Read, Gla));

        Assert.IsType<Translated>(evaluation.Outcome);
        Assert.Equal("eeeeG" + "eeeeG" + "eeeeG" + "eeeeG" + "eeee", Shape(evaluation));
        Assert.All(evaluation.Walk.Take(20).Where(s => s.Structure == Structure.Guest), s => Assert.Equal(Gla, s.Translating));
        Assert.All(evaluation.Walk.Skip(20), s => Assert.Equal(Gpa, s.Translating));
        Assert.Empty(evaluation.Writes);
    }

    [Fact]
    public void GuestAccessedClear_WriteBackWalksBetweenGuestLeafAndFinalWalk()
    {
        // The model's choice where SEMANTICS.md is silent: each guest A/D write-back is an EPT
        // write with its own walk (EPT-GWALK-2), listed in order after the guest walk.
        Scenario scenario = new Scenario().Map(Gpa, 0x9000).WithGuestPaging().GuestMap(Gla, Gpa, GP | GRW | GUS | GA);
        Evaluation evaluation = scenario.Run(Expect.Linear(AccessType.Read, Gla));

        Assert.IsType<Translated>(evaluation.Outcome);
        Assert.Equal("eeeeGeeeeGeeeeGeeeeG" + "eeee" + "eeee" + "eeee" + "eeee", Shape(evaluation));
        ulong[] writeBackGpas = [.. evaluation.Walk.Skip(20).Take(12).Select(s => s.Translating).Distinct()];
        Assert.Equal(3, writeBackGpas.Length);
        Assert.Equal(3, evaluation.Writes.Count);
    }
}

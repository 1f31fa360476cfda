using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Comparing;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using EptFuzz.Harness.Tests.Fuzzing.Support;

namespace EptFuzz.Harness.Tests.Fuzzing;

public class ReducerTests
{
    private static readonly RunOptions Planted = TestTargets.Options(planted: true);

    /// <summary>The planted bug buried in 40 unrelated steps.</summary>
    private static EptCase Buried()
    {
        var filler = CaseGenerator.Generate(11, new GeneratorProfile { Steps = 40, Cpu = CpuProfile.Default });
        var steps = new List<Step>(filler.Steps);
        // PDE index 511 of the first GB: 0x3fe00000; mapped read-only, then written.
        steps.Insert(20, new MapStep(new Gpa(0x3fe0_0000), new Hpa(0x8000_0000), 1UL << 21, EptPermissions.ReadAccess | EptPermissions.ExecuteAccess, MemoryType.WT, true));
        steps.Insert(30, AccessStep.Physical(AccessKind.Write, new Gpa(0x3fe0_1238)));
        return new EptCase(steps, sourceName: "buried.ept");
    }

    [Fact]
    public void Reduce_KeepsTheSignature_AndShrinksToAHandfulOfSteps()
    {
        EptCase c = Buried();
        CaseResult original = CaseRunner.Run(c, Planted);
        Assert.Equal(CaseStatus.Diverged, original.Status);
        string signature = original.Signature!;

        var r = Reducer.Reduce(c, x => CaseRunner.Run(x, Planted), signature, Reducer.DefaultCap);

        Assert.True(r.Reproduced);
        Assert.False(r.TimedOut);
        Assert.Equal(signature, r.Signature);
        Assert.Equal(signature, CaseRunner.Run(r.Case, Planted).Signature);
        Assert.Equal(c.Steps.Length, r.StepsBefore);
        Assert.InRange(r.StepsAfter, 2, 4);
        Assert.Empty(CaseValidator.Check(r.Case));
        // Optional keys the failure does not need are gone: no mt=, no ipat=, no needless permission.
        var map = Assert.Single(r.Case.Steps.OfType<MapStep>());
        Assert.Null(map.MemoryType);
        Assert.Null(map.IgnorePat);
        Assert.Equal(EptPermissions.ReadAccess, map.Permissions);
        var write = Assert.Single(r.Case.Steps.OfType<AccessStep>());
        Assert.Equal(0UL, write.Gpa!.Value.Value & 0xFFF);
    }

    [Fact]
    public void Reduce_OnlyShrinks_EveryStepOfTheResultIsNoLargerThanInTheInput()
    {
        for (ulong seed = 0; seed < 5; seed++)
        {
            var filler = CaseGenerator.Generate(seed, new GeneratorProfile { Steps = 20, Cpu = CpuProfile.Default });
            var steps = new List<Step>(filler.Steps)
            {
                new MapStep(new Gpa(0x7fe0_0000), new Hpa(0x4000_0000), 1UL << 21, EptPermissions.ReadAccess),
                AccessStep.Physical(AccessKind.Write, new Gpa(0x7fe0_0000)),
            };
            var c = new EptCase(steps, sourceName: "s.ept");
            string? signature = CaseRunner.Run(c, Planted).Signature;
            if (signature is null)
            {
                // The filler mapped that range first; the planted write never happens.
                continue;
            }

            var r = Reducer.Reduce(c, x => CaseRunner.Run(x, Planted), signature, Reducer.DefaultCap);
            Assert.True(r.StepsAfter <= r.StepsBefore);
            int Total(EptCase x) => x.Steps.Sum(s => Reducer.Cost(s).Length);
            Assert.True(Total(r.Case) <= Total(c));
            Assert.Equal(signature, CaseRunner.Run(r.Case, Planted).Signature);
        }
    }

    [Fact]
    public void Reduce_OfACaseWithoutThatFailure_ChangesNothing()
    {
        EptCase c = CaseGenerator.Generate(5, GeneratorProfile.Default);
        var r = Reducer.Reduce(c, x => CaseRunner.Run(x, TestTargets.Options()), "write.gpa|model:violation|broken:ok|kind", Reducer.DefaultCap);
        Assert.False(r.Reproduced);
        Assert.Same(c, r.Case);
        Assert.Equal(1, r.Runs);
        Assert.Null(Reducer.Reduce(c, TestTargets.Options(), Reducer.DefaultCap));
    }

    [Fact]
    public void Reduce_WithAZeroCap_StopsAtOnce_AndKeepsTheInput()
    {
        EptCase c = Buried();
        string signature = CaseRunner.Run(c, Planted).Signature!;
        var r = Reducer.Reduce(c, x => CaseRunner.Run(x, Planted), signature, TimeSpan.Zero);
        Assert.True(r.TimedOut);
        Assert.Equal(c.Steps.Length, r.StepsAfter);
    }

    [Fact]
    public void Reduce_MovesARegionAndEverythingInsideItToASmallAddress()
    {
        // A stand-in oracle: the failure is "a write lands inside a read-only 2M map", wherever it is.
        static CaseResult Oracle(EptCase c)
        {
            var maps = c.Steps.OfType<MapStep>().Where(m => m.Permissions == EptPermissions.ReadAccess && m.Size == 1UL << 21).ToList();
            bool hit = c.Steps.OfType<AccessStep>().Any(a => a.Kind == AccessKind.Write && a.Gpa is { } g && maps.Any(m => g.Value - m.Gpa.Value < m.Size));
            return new CaseResult { File = "x", Status = hit ? CaseStatus.Diverged : CaseStatus.Passed, Divergence = hit ? new DivergenceSignature("write.gpa", "a", "ok", "b", "violation", "kind") : null };
        }

        var c = new EptCase(
        [
            new CpuStep(),
            new EptpStep(),
            new MapStep(new Gpa(0x7f_9fe0_0000), new Hpa(0x2b15_0020_0000), 1UL << 21, EptPermissions.ReadAccess),
            AccessStep.Physical(AccessKind.Read, new Gpa(0x7f_9fe0_3000)),
            AccessStep.Physical(AccessKind.Write, new Gpa(0x7f_9fe1_2000)),
        ]);
        var r = Reducer.Reduce(c, Oracle, "write.gpa|a:ok|b:violation|kind", Reducer.DefaultCap);

        var map = Assert.Single(r.Case.Steps.OfType<MapStep>());
        var write = Assert.Single(r.Case.Steps.OfType<AccessStep>());
        Assert.Equal(0UL, map.Gpa.Value);
        Assert.Equal(0UL, map.Hpa.Value);
        Assert.InRange(write.Gpa!.Value.Value, 0UL, (1UL << 21) - 1);
        Assert.Empty(CaseValidator.Check(r.Case));
    }

    [Fact]
    public void Reduce_WhenCancelled_StopsAndKeepsTheInput()
    {
        EptCase c = Buried();
        string signature = CaseRunner.Run(c, Planted).Signature!;
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        var r = Reducer.Reduce(c, x => CaseRunner.Run(x, Planted), signature, Reducer.DefaultCap, cancelled.Token);
        Assert.True(r.TimedOut);
        Assert.Equal(c.Steps.Length, r.StepsAfter);
    }

    [Fact]
    public void FindingHeader_And_RegressionTest_CarryTheCaseAndItsProvenance()
    {
        EptCase c = Buried();
        var r = Reducer.Reduce(c, Planted, Reducer.DefaultCap)!;
        var annotated = FindingFile.Annotate(r, new FindingOrigin("eptfuzz fuzz --seed 0x5eed", 0x1234, CpuProfile.Default), "findings/x.ept", f => $"./eptfuzz replay {f}");
        string text = CasePrinter.Print(annotated);
        Assert.Contains("# case seed: 0x0000000000001234", text, StringComparison.Ordinal);
        Assert.Contains($"# signature: {r.Signature}", text, StringComparison.Ordinal);
        Assert.Contains($"# steps: {r.StepsBefore} before, {r.StepsAfter} after reduction", text, StringComparison.Ordinal);
        Assert.Contains("# model: violation", text, StringComparison.Ordinal);
        Assert.Contains("# broken: ok", text, StringComparison.Ordinal);
        Assert.Contains("# replay: ./eptfuzz replay findings/x.ept", text, StringComparison.Ordinal);
        var reparsed = CaseParser.Parse(text, "x.ept");
        Assert.True(reparsed.Succeeded, reparsed.ErrorText());
        Assert.Equal(r.Signature, CaseRunner.Run(reparsed.Case, Planted).Signature);

        string test = RegressionTestEmitter.Emit(r.Case, r.Signature, "Options()");
        Assert.Contains("[Fact]", test, StringComparison.Ordinal);
        Assert.Contains($"Finding_{FindingFile.HashOf(r.Signature)}_", test, StringComparison.Ordinal);
        foreach (Step s in r.Case.Steps)
        {
            Assert.Contains(CasePrinter.PrintStep(s), test, StringComparison.Ordinal);
        }
    }
}

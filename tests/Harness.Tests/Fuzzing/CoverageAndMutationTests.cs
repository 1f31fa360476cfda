using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using EptFuzz.Harness.Tests.Fuzzing.Support;

namespace EptFuzz.Harness.Tests.Fuzzing;

public class CoverageAndMutationTests
{
    private static int RunWithCoverage(EptCase c, CoverageMap map)
    {
        map.BeginCase();
        var result = CaseRunner.Run(c, TestTargets.Options() with { Observer = map });
        Assert.Equal(CaseStatus.Passed, result.Status);
        return map.EndCase();
    }

    [Fact]
    public void Coverage_CountsRulesOnce_AndRerunningACaseAddsNothing()
    {
        var map = new CoverageMap(WalkingTarget.Rules);
        var c = CaseGenerator.Generate(3, GeneratorProfile.Default);
        int first = RunWithCoverage(c, map);
        Assert.True(first > 0);
        Assert.True(map.RulesHit > 0);
        Assert.Equal(0, RunWithCoverage(c, map));
        Assert.Equal(WalkingTarget.Rules.Length, map.RulesModelled);
        Assert.InRange(map.RulesHit, 1, map.RulesModelled);
        Assert.Equal(map.RulesHit, map.RuleNamesHit().Count);
        Assert.Equal($"{map.RulesHit}/{map.RulesModelled}", map.RulesText);
    }

    [Fact]
    public void Coverage_GrowsOverDifferentCases_AndUnionMatches()
    {
        var a = new CoverageMap(WalkingTarget.Rules);
        var b = new CoverageMap(WalkingTarget.Rules);
        for (ulong seed = 0; seed < 40; seed++)
        {
            RunWithCoverage(CaseGenerator.Generate(seed, GeneratorProfile.Default), seed % 2 == 0 ? a : b);
        }

        var union = new CoverageMap(WalkingTarget.Rules);
        union.UnionWith(a);
        int added = union.UnionWith(b);
        Assert.True(union.Features >= Math.Max(a.Features, b.Features));
        Assert.Equal(a.Features + added, union.Features);
        Assert.True(union.RulesHit >= 10, $"rules hit {union.RulesText}: {string.Join(' ', union.RuleNamesHit())}");
    }

    [Fact]
    public void Mutants_AreValid_Deterministic_AndUsuallyDifferent()
    {
        int changed = 0;
        for (ulong seed = 0; seed < 200; seed++)
        {
            var parent = CaseGenerator.Generate(seed, new GeneratorProfile { Steps = 24 });
            var donor = CaseGenerator.Generate(seed + 1000, new GeneratorProfile { Steps = 24 });
            var m1 = Mutator.Mutate(parent, new Prng(seed), donor);
            var m2 = Mutator.Mutate(parent, new Prng(seed), donor);
            Assert.Equal(CasePrinter.Print(m1), CasePrinter.Print(m2));
            var errors = CaseValidator.Check(m1);
            Assert.True(errors.Count == 0, $"seed {seed}: {string.Join("; ", errors)}\n{CasePrinter.Print(m1)}");
            Assert.True(CaseShape.IsValid(m1.Steps));
            Assert.InRange(m1.Steps.Length, 1, Mutator.MaxSteps);
            if (!m1.Equals(parent))
            {
                changed++;
            }
        }

        Assert.True(changed > 180, $"only {changed} of 200 mutants differ from their parent");
    }

    [Fact]
    public void Repair_RestoresTheOrderRules()
    {
        var steps = new List<Step>
        {
            new CpuStep(),
            new MapStep(new(0), new(0), 4096, Contract.EptPermissions.ReadAccess),
            new GMapStep(new(0), new(0), 4096, GuestPagePermissions.None),
            new CpuStep(),
            AccessStep.Physical(Contract.AccessKind.Read, new(0)),
        };
        Assert.False(CaseShape.IsValid(steps));
        CaseShape.Repair(steps);
        Assert.True(CaseShape.IsValid(steps));
        Assert.Equal(["cpu", "eptp", "map", "read"], steps.Select(s => s.Verb));
    }
}

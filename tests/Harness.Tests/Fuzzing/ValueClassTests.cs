using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using EptFuzz.Impl.Hypervisor;
using EptFuzz.Impl.Target;
using EptFuzz.Targets.Model;

namespace EptFuzz.Harness.Tests.Fuzzing;

/// <summary>The generator reaches every value class of the written list (ValueClasses.cs).</summary>
public sealed class ValueClassTests
{
    private static RunOptions ModelAndImpl(CoverageMap observer) => new()
    {
        Hypervisor = () => new EptHypervisor(),
        Targets = [new ModelTarget(), new ImplTarget()],
        Observer = observer,
    };

    [Fact]
    public void DefaultGenerator_HitsEveryValueClass_In100000Cases()
    {
        const int Cases = 100_000;
        int threads = Math.Max(1, Math.Min(Environment.ProcessorCount, 4));
        var maps = new CoverageMap[threads];
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
        {
            var map = new CoverageMap();
            maps[t] = map;
            RunOptions options = ModelAndImpl(map);
            for (int i = t; i < Cases; i += threads)
            {
                EptCase c = CaseGenerator.Generate(Prng.Derive(0x5eed, (ulong)i), GeneratorProfile.Default);
                map.BeginCase(c);
                _ = Campaign.SafeRun(c, options);
                map.EndCase();
            }
        });

        var missed = Enumerable.Range(0, ValueClasses.Count)
            .Where(i => maps.All(m => !m.HasClass(i)))
            .Select(i => ValueClasses.Names[i])
            .ToList();
        Assert.True(missed.Count == 0, $"{missed.Count} of {ValueClasses.Count} value classes never hit in {Cases} generated cases:\n" + string.Join('\n', missed));
    }

    [Fact]
    public void ClassNames_AreUnique_AndFitTheCoverageMap()
    {
        Assert.Equal(ValueClasses.Count, ValueClasses.Names.Distinct(StringComparer.Ordinal).Count());
        Assert.InRange(ValueClasses.Count, 100, CoverageMap.ClassSpace);
    }

    [Fact]
    public void Classifier_SeesAlignmentAndTheMaxPhyAddrEdge()
    {
        var parsed = CaseParser.Parse(
            "eptcase 1\ncpu maxphyaddr=36\neptp\nmap gpa=0x200000 hpa=0x201000 size=2M perm=rwx\nunmap gpa=0xfffff000 size=0x1000\nprotect gpa=0xfff000000 size=0x1000000 perm=r\n",
            "t.ept");
        Assert.True(parsed.Succeeded, parsed.ErrorText());
        var classifier = new ValueClassifier();
        classifier.Begin(parsed.Case);
        var hit = classifier.Hits.Select(i => ValueClasses.Names[i]).ToHashSet(StringComparer.Ordinal);
        Assert.Contains("map.size x gpa-align x hpa-align=2M 2M 4K", hit);
        Assert.Contains("cpu.maxphyaddr=36", hit);
        Assert.Contains("unmap.range=below", hit);
        Assert.Contains("protect.range=ends-at-limit", hit);
        Assert.DoesNotContain("protect.range=crosses", hit);
    }
}

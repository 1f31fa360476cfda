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
                _ = CaseRunner.Run(c, options);
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

/// <summary>The feedback spaces: code edges bucketed as AFL does, and --coverage choosing what guides.</summary>
public sealed class FeedbackKindsTests
{
    [Theory]
    [InlineData(1, 0)]
    [InlineData(2, 1)]
    [InlineData(3, 2)]
    [InlineData(4, 3)]
    [InlineData(7, 3)]
    [InlineData(8, 4)]
    [InlineData(15, 4)]
    [InlineData(16, 5)]
    [InlineData(31, 5)]
    [InlineData(32, 6)]
    [InlineData(127, 6)]
    [InlineData(128, 7)]
    [InlineData(255, 7)]
    public void HitCounts_AreBucketedAsAflDoes(int count, int bucket) => Assert.Equal(bucket, CoverageMap.Bucket((byte)count));

    [Fact]
    public void CodeEdges_GuideOnlyWhenChosen_AndANewBucketIsNew()
    {
        var trace = new byte[CoverageMap.CodeEdges];
        trace[17] = 1;
        trace[40_000] = 200;
        var rulesOnly = new CoverageMap(kinds: CoverageKinds.Rules);
        rulesOnly.BeginCase();
        rulesOnly.AddCodeEdges(trace);
        Assert.Equal(0, rulesOnly.EndCase());
        Assert.Equal(2, rulesOnly.CodeEdgesHit());

        var code = new CoverageMap(kinds: CoverageKinds.Code);
        code.BeginCase();
        code.AddCodeEdges(trace);
        Assert.Equal(2, code.EndCase());
        code.BeginCase();
        code.AddCodeEdges(trace);
        Assert.Equal(0, code.EndCase());
        trace[17] = 2; // the same edge, a new hit-count bucket
        code.BeginCase();
        code.AddCodeEdges(trace);
        Assert.Equal(1, code.EndCase());
        Assert.Equal([17, 40_000], code.CodeEdgeIndices());
    }

    [Fact]
    public void ValueClasses_GuideOnlyWhenChosen_ButAreCountedEitherWay()
    {
        var parsed = CaseParser.Parse("eptcase 1\ncpu\neptp\nmap gpa=0 hpa=0 size=4K perm=r\n", "t.ept");
        Assert.True(parsed.Succeeded, parsed.ErrorText());
        var rulesOnly = new CoverageMap(kinds: CoverageKinds.Rules);
        rulesOnly.BeginCase(parsed.Case);
        Assert.Equal(0, rulesOnly.EndCase());
        Assert.True(rulesOnly.ClassesHit > 5);
        var classes = new CoverageMap(kinds: CoverageKinds.Classes);
        classes.BeginCase(parsed.Case);
        Assert.Equal(0, classes.ClassesHit);
        Assert.True(classes.EndCase() > 5);
        Assert.Equal(1, classes.ClassCount(ValueClasses.Names.ToList().IndexOf("map.perm=r")));
    }

    [Theory]
    [InlineData("rules", CoverageKinds.Rules)]
    [InlineData("code", CoverageKinds.Code)]
    [InlineData("both", CoverageKinds.All)]
    [InlineData("rules,classes", CoverageKinds.Rules | CoverageKinds.Classes)]
    public void CoverageFlag_Parses(string text, CoverageKinds expected)
    {
        Assert.True(CoverageKindsText.TryParse(text, out CoverageKinds k, out _));
        Assert.Equal(expected, k);
    }

    [Fact]
    public void CoverageFlag_RefusesUnknownWords() => Assert.False(CoverageKindsText.TryParse("branches", out _, out string error) || !error.Contains("branches", StringComparison.Ordinal));
}

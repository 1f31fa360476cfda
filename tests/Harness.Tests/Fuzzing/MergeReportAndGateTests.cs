using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Reporting;
using EptFuzz.Harness.Running;
using EptFuzz.Harness.Tests.Fuzzing.Support;

namespace EptFuzz.Harness.Tests.Fuzzing;

public sealed class MergeReportAndGateTests : IDisposable
{
    private const string PlantedSignature = "write.gpa|model:violation|broken:ok|kind";
    private readonly DirectoryInfo temp = Directory.CreateTempSubdirectory("eptfuzz-merge-");

    public void Dispose() => temp.Delete(recursive: true);

    private string Out(string name) => Path.Combine(temp.FullName, name);

    private CampaignSummary Shard(string name, int k, long runs) => new Campaign(new CampaignOptions
    {
        OutDir = Out(name),
        Targets = () => TestTargets.Options(planted: true),
        Seed = 0x5eed,
        Runs = runs,
        Shard = new Shard(k, 2),
        Profile = new GeneratorProfile { Steps = 32 },
        StatusInterval = TimeSpan.FromHours(1),
    }).Run(CancellationToken.None);

    [Fact]
    public void Merge_UnitesQueues_KeepsOneFindingPerSignature_AndSumsCounters()
    {
        var a = Shard("a", 1, 800);
        var b = Shard("b", 2, 800);
        var m = CampaignMerge.Merge([Out("a"), Out("b")], Out("m"));

        Assert.Equal(2, m.Inputs);
        Assert.Equal(m.QueueEntries, Directory.GetFiles(Path.Combine(Out("m"), "queue"), "id-*.ept").Length);
        Assert.Equal(a.Final.CorpusSize + b.Final.CorpusSize, m.QueueEntries + m.DuplicateEntries);
        var stats = CampaignStats.Load(Out("m"), out string error);
        Assert.True(stats is not null, error);
        Assert.Equal(a.Final.Executions + b.Final.Executions, stats.Executions);
        Assert.True(a.Final.Probes > 0 && b.Final.Probes > 0);
        Assert.Equal(a.Final.Probes + b.Final.Probes, stats.Probes);
        var signatures = a.Findings.Concat(b.Findings).Select(f => f.Signature).Distinct().ToList();
        Assert.Equal(signatures.Count, m.Findings.Count);
        foreach (FindingRecord f in m.Findings)
        {
            long total = a.Findings.Concat(b.Findings).Where(x => x.Signature == f.Signature).Sum(x => x.Count);
            Assert.Equal(total, f.Count);
            Assert.True(File.Exists(Path.Combine(Out("m"), f.ReducedPath)));
        }

        Assert.Contains(m.Findings, f => f.Signature == PlantedSignature);
        var again = Assert.Throws<CampaignUsageException>(() => CampaignMerge.Merge([Out("a")], Out("m")));
        Assert.Contains("already holds a campaign", again.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Merge_KeepsTheGeneratorProfile()
    {
        var profile = new GeneratorProfile { Steps = 24, Cpu = CpuProfile.Full, ProbeWeight = 400 };
        for (int k = 1; k <= 2; k++)
        {
            new Campaign(new CampaignOptions
            {
                OutDir = Out($"p{k}"),
                Targets = () => TestTargets.Options(),
                Seed = 0x5eed,
                Runs = 20,
                Shard = new Shard(k, 2),
                Profile = profile,
                StatusInterval = TimeSpan.FromHours(1),
            }).Run(CancellationToken.None);
        }

        CampaignMerge.Merge([Out("p1"), Out("p2")], Out("pm"));

        var stats = CampaignStats.Load(Out("pm"), out string error);
        Assert.True(stats is not null, error);
        Assert.Equal(("full", 24, 400), (stats.CpuProfile, stats.StepsPerCase, stats.ProbeWeight));
    }

    [Fact]
    public void Report_IsOneSelfContainedPage_WithChartsFindingsAndWalkTrees()
    {
        string dir = Out("r");
        new Campaign(new CampaignOptions
        {
            OutDir = dir,
            Targets = () => TestTargets.Options(planted: true),
            Seed = 0x5eed,
            Runs = 1000,
            Profile = new GeneratorProfile { Steps = 32 },
            StatusInterval = TimeSpan.FromHours(1),
        }).Run(CancellationToken.None);
        // Status points normally come from the clock; give the chart two of them.
        var stats = CampaignStats.Load(dir, out _)!;
        stats.History = [new HistoryPoint(0, 0, 0, 0, 0, 0, 0), new HistoryPoint(10, 1000, 100, stats.RulesHit, stats.Features, stats.CorpusSize, stats.Findings.Count, 23_000, 2_300)];
        stats.Save(dir);

        string path = HtmlReport.Write(dir);
        string html = File.ReadAllText(path);
        Assert.StartsWith("<!DOCTYPE html>", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", html, StringComparison.Ordinal);
        Assert.DoesNotContain("src=", html, StringComparison.Ordinal);
        // Rules hit, value classes hit, coverage features, exec/s and probes/s (no code edges: not instrumented).
        Assert.Equal(5, CountOf(html, "<svg"));
        Assert.Contains(">value classes hit</text>", html, StringComparison.Ordinal);
        Assert.Contains("<h2>Value classes never hit</h2>", html, StringComparison.Ordinal);
        Assert.Contains(">probes/s</text>", html, StringComparison.Ordinal);
        Assert.Contains("cpu profile random, 32 steps per case, probe weight 38", html, StringComparison.Ordinal);
        Assert.Contains($"<th>probes</th><td>{stats.Probes}</td>", html, StringComparison.Ordinal);
        Assert.Contains("<polyline", html, StringComparison.Ordinal);
        Assert.Contains(System.Net.WebUtility.HtmlEncode(PlantedSignature), html, StringComparison.Ordinal);
        Assert.Contains($"{stats.RulesHit}/{stats.RulesModelled}", html, StringComparison.Ordinal);
        Assert.Contains("<ul class=\"walk\">", html, StringComparison.Ordinal);
        // The planted bug reads the same entries on both sides: nothing in its walks is marked.
        Assert.DoesNotContain("<span class=\"differs\">", html, StringComparison.Ordinal);
        // The reduced case's steps are on the page.
        var finding = stats.Findings.Single(f => f.Signature == PlantedSignature);
        var reduced = CaseParser.Parse(File.ReadAllText(Path.Combine(dir, finding.ReducedPath)), "x.ept").Case!;
        foreach (Step s in reduced.Steps)
        {
            Assert.Contains(System.Net.WebUtility.HtmlEncode(CasePrinter.PrintStep(s)), html, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Report_MarksTheWalkEntriesTheSidesReadDifferently()
    {
        string dir = Out("synthetic");
        Directory.CreateDirectory(Path.Combine(dir, "findings"));
        var f = new FindingRecord { Signature = "read.gpa|model:ok|impl:ok|ad", Hash = "0000abcd", StepsBefore = 9, StepsAfter = 3 };
        var stats = new CampaignStats { Findings = [f], RulesHit = 2, RulesModelled = 5 };
        stats.Save(dir);
        ObservationView[] sides =
        [
            new("model", "ok hpa=0x1000", ["ept   PML4E  @0x1000 = 0x2107  same", "ept   PDPTE  @0x2000 = 0x3107  A set"], []),
            new("impl", "ok hpa=0x1000", ["ept   PML4E  @0x1000 = 0x2107  same", "ept   PDPTE  @0x2000 = 0x3007  A clear"], []),
        ];
        File.WriteAllText(Path.Combine(dir, "findings", "0000abcd.json"), System.Text.Json.JsonSerializer.Serialize(new FindingDetail(f.Signature, f.Hash, "step 3: differs", sides, null), new System.Text.Json.JsonSerializerOptions { PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.CamelCase }));

        string html = HtmlReport.Render(dir, stats);

        Assert.Equal(2, CountOf(html, "<span class=\"differs\">"));
        Assert.Equal(2, CountOf(html, "<span>ept   PML4E"));
        Assert.Contains("The reduced case is missing", html, StringComparison.Ordinal);
        Assert.Contains("2/5", html, StringComparison.Ordinal);
    }

    [Fact]
    public void GateRandomSet_IsFixedBySeed_AndValid()
    {
        var a = RandomSet.Generate(RandomSet.DefaultSeed, 20);
        var b = RandomSet.Generate(RandomSet.DefaultSeed, 20);
        var c = RandomSet.Generate(RandomSet.DefaultSeed + 1, 20);
        Assert.Equal(20, a.Count);
        Assert.Equal(a.Select(CasePrinter.Print), b.Select(CasePrinter.Print));
        Assert.NotEqual(a.Select(CasePrinter.Print), c.Select(CasePrinter.Print));
        Assert.All(a, x => Assert.Empty(CaseValidator.Check(x)));
        Assert.Equal(a.Count, a.Select(x => x.SourceName).Distinct().Count());
        Assert.Throws<ArgumentOutOfRangeException>(() => RandomSet.Generate(1, -1));
    }

    private static int CountOf(string text, string part)
    {
        int n = 0;
        for (int i = text.IndexOf(part, StringComparison.Ordinal); i >= 0; i = text.IndexOf(part, i + 1, StringComparison.Ordinal))
        {
            n++;
        }

        return n;
    }
}

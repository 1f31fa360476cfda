using EptFuzz.Harness.Fuzzing;
using EptFuzz.Reliability.Tests.Support;

namespace EptFuzz.Reliability.Tests;

/// <summary>Issue 17, item 9: the queue is culled to a working set that keeps every feature: on resume, on merge, and by cmin.</summary>
public sealed class QueueCullTests : IDisposable
{
    private readonly TempDir temp = new();

    public void Dispose() => temp.Dispose();

    [Fact]
    public void Favoured_KeepsEveryFeature_PreferringTheCheaperEntry()
    {
        (IReadOnlyList<int> Features, int Cost)[] entries =
        [
            ([1, 2], 10),      // 0: all of its features are set more cheaply by 1 and 2
            ([1], 1),          // 1
            ([2, 3], 2),       // 2
            ([3], 5),          // 3: 3 is set more cheaply by 2
            ([4], 7),          // 4: the only entry with 4
        ];

        IReadOnlyList<int> kept = QueueCull.Favoured(entries);

        Assert.Equal([1, 2, 4], kept);
        Assert.Equal(entries.SelectMany(e => e.Features).Distinct().Order(), kept.SelectMany(i => entries[i].Features).Distinct().Order());
    }

    [Fact]
    public void Resume_CullsTheQueue_KeepingEveryFeature_AndReplaysOnlyTheWorkingSetNextTime()
    {
        string dir = temp["campaign"];
        CampaignSummary first = new Campaign(RealTargets.Campaign(dir, runs: 400)).Run(CancellationToken.None);

        CampaignSummary resumed = new Campaign(RealTargets.Campaign(dir, runs: 0) with { Resume = true }).Run(CancellationToken.None);

        string queue = Path.Combine(dir, "queue");
        int working = Directory.GetFiles(queue, "id-*.ept").Length;
        int culled = Directory.GetFiles(Path.Combine(queue, "culled"), "id-*.ept").Length;
        Assert.Equal(first.Final.Features, resumed.Final.Features);
        Assert.True(culled > 0, "nothing was culled");
        Assert.Equal(first.Final.CorpusSize, working + culled);
        Assert.Equal(working, resumed.Final.CorpusSize);
        Assert.Equal(working + culled, resumed.Final.QueueSize);
        var stats = CampaignStats.Load(dir, out string error) ?? throw new InvalidOperationException(error);
        Assert.Equal((working, working + culled), (stats.CorpusSize, stats.QueueSize));

        // The next resume replays the working set only, and finds the same features.
        long before = resumed.Final.Executions;
        CampaignSummary again = new Campaign(RealTargets.Campaign(dir, runs: 0) with { Resume = true }).Run(CancellationToken.None);
        Assert.InRange(again.Final.Executions - before, working, working + 1);
        Assert.Equal(first.Final.Features, again.Final.Features);
    }

    [Fact]
    public void Cmin_KeepsFewerCases_ThatSetEveryFeatureTheInputsSet()
    {
        string dir = temp["campaign"];
        new Campaign(RealTargets.Campaign(dir, runs: 400)).Run(CancellationToken.None);
        string queue = Path.Combine(dir, "queue");
        string output = temp["minimized"];

        CliRun run = CliProcess.Run(["cmin", queue, "--out", output]);

        Assert.True(run.ExitCode == 0, run.ToString());
        string[] inputs = Directory.GetFiles(queue, "id-*.ept");
        string[] kept = Directory.GetFiles(output, "*.ept");
        Assert.InRange(kept.Length, 1, inputs.Length - 1);
        Assert.Equal(Features(inputs), Features(kept));
    }

    [Fact]
    public void Merge_CullsTheMergedQueue_KeepingEveryFeature()
    {
        string a = temp["a"], b = temp["b"], into = temp["merged"];
        new Campaign(RealTargets.Campaign(a, runs: 200)).Run(CancellationToken.None);
        new Campaign(RealTargets.Campaign(b, runs: 200) with { Shard = new Shard(2, 2) }).Run(CancellationToken.None);

        MergeSummary summary = CampaignMerge.Merge([a, b], into, coverage: () => RealTargets.Options());

        string[] working = Directory.GetFiles(Path.Combine(into, "queue"), "id-*.ept");
        string[] culled = Directory.GetFiles(Path.Combine(into, "queue", "culled"), "id-*.ept");
        Assert.Equal(summary.QueueEntries, working.Length);
        Assert.Equal(summary.CulledEntries, culled.Length);
        Assert.True(culled.Length > 0, "nothing was culled");
        Assert.Equal(Features([.. working, .. culled]), Features(working));
    }

    private static int[] Features(IEnumerable<string> files)
    {
        var warnings = new List<string>();
        var measured = CorpusMinimizer.Measure(files.Order(StringComparer.Ordinal), () => RealTargets.Options(), warnings);
        Assert.Empty(warnings);
        return [.. measured.SelectMany(m => m.Features).Distinct().Order()];
    }
}

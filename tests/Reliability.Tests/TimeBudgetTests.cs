using EptFuzz.Harness.Fuzzing;
using EptFuzz.Reliability.Tests.Support;

namespace EptFuzz.Reliability.Tests;

/// <summary>Issue 17, item 6: --max-total-time is wall time from start to exit; loading the corpus and the queue spends it too.</summary>
public sealed class TimeBudgetTests : IDisposable
{
    private readonly TempDir temp = new();

    public void Dispose() => temp.Dispose();

    [Fact]
    public void AnExhaustedBudget_RunsNoCorpusCase()
    {
        string dir = temp["campaign"];
        var options = RealTargets.Campaign(dir, runs: null) with { MaxTotalTime = TimeSpan.Zero, CorpusDir = Path.Combine(CliProcess.Root, "corpus") };

        CampaignSummary summary = new Campaign(options).Run(CancellationToken.None);

        Assert.Equal("time", summary.StopReason);
        Assert.Equal(0, summary.Final.Executions);
        Assert.Empty(Directory.GetFiles(Path.Combine(dir, "queue"), "id-*.ept"));
    }

    [Fact]
    public void AnExhaustedBudget_OnResume_DoesNotReplayTheQueue()
    {
        string dir = temp["campaign"];
        CampaignSummary first = new Campaign(RealTargets.Campaign(dir, runs: 200)).Run(CancellationToken.None);
        Assert.True(first.Final.CorpusSize > 0);

        CampaignSummary resumed = new Campaign(RealTargets.Campaign(dir, runs: null) with { Resume = true, MaxTotalTime = TimeSpan.Zero }).Run(CancellationToken.None);

        Assert.Equal("time", resumed.StopReason);
        Assert.Equal(first.Final.Executions, resumed.Final.Executions);
    }
}

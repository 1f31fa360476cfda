using EptFuzz.Harness.Fuzzing;
using EptFuzz.Reliability.Tests.Support;

namespace EptFuzz.Reliability.Tests;

/// <summary>Issue 17, item 8: a torn events.jsonl line does not swallow the next event; resume counts what the log saw; stale temporaries go.</summary>
public sealed class EventLogTests : IDisposable
{
    private readonly TempDir temp = new();

    public void Dispose() => temp.Dispose();

    [Fact]
    public void ATornLastLine_IsSkipped_AndTheResumedEventsAreLinesOfTheirOwn()
    {
        string dir = temp["campaign"];
        new Campaign(RealTargets.Campaign(dir, runs: 20)).Run(CancellationToken.None);
        int before = CampaignEvent.ReadAll(dir).Count;
        File.AppendAllText(Path.Combine(dir, "events.jsonl"), "{\"type\":\"status\",\"seconds\":1.5,\"execu");

        new Campaign(RealTargets.Campaign(dir, runs: 20) with { Resume = true }).Run(CancellationToken.None);

        var events = CampaignEvent.ReadAll(dir, out int torn);
        Assert.Equal(1, torn);
        Assert.Equal("resume", events[before].Type);
        Assert.Equal("stop", events[^1].Type);
    }

    [Fact]
    public void AnEventAheadOfStats_IsWhereTheResumedCountStarts()
    {
        string dir = temp["campaign"];
        CampaignSummary first = new Campaign(RealTargets.Campaign(dir, runs: 20)).Run(CancellationToken.None);
        // What a kill leaves: an event written after the last stats.json.
        long ahead = first.Final.Executions + 1000;
        File.AppendAllText(Path.Combine(dir, "events.jsonl"), $"{{\"type\":\"infrastructure\",\"seconds\":9,\"executions\":{ahead},\"message\":\"x\"}}\n");

        CampaignSummary resumed = new Campaign(RealTargets.Campaign(dir, runs: 20) with { Resume = true }).Run(CancellationToken.None);

        // From there: the queue replayed, the last slot's case and the 20 new runs come on top.
        Assert.InRange(resumed.Final.Executions, ahead + 20, ahead + 20 + first.Final.CorpusSize + 1);
        Assert.All(CampaignEvent.ReadAll(dir), e => Assert.True(e.Executions <= resumed.Final.Executions));
    }

    [Fact]
    public void StaleTemporaries_AreDeletedOnResume()
    {
        string dir = temp["campaign"];
        new Campaign(RealTargets.Campaign(dir, runs: 20)).Run(CancellationToken.None);
        string[] stale = [Path.Combine(dir, ".stats.json.999.1.tmp"), Path.Combine(dir, "queue", ".id-000001-0000000000000000.ept.999.5.tmp"), Path.Combine(dir, "findings", ".0badf00d.ept.999.7.tmp")];
        foreach (string s in stale)
        {
            File.WriteAllText(s, string.Empty);
        }

        CampaignSummary resumed = new Campaign(RealTargets.Campaign(dir, runs: 20) with { Resume = true }).Run(CancellationToken.None);

        Assert.All(stale, s => Assert.False(File.Exists(s), s));
        Assert.Contains("deleted 3 temporary file(s) that an interrupted write left", resumed.Warnings);
    }
}

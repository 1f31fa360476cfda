using EptFuzz.Harness.Fuzzing;
using EptFuzz.Reliability.Tests.Support;

namespace EptFuzz.Reliability.Tests;

/// <summary>Issue 17, item 2: one campaign per directory; a killed campaign's lock does not block --resume.</summary>
public sealed class CampaignLockTests : IDisposable
{
    private readonly TempDir temp = new();

    public void Dispose() => temp.Dispose();

    [Fact]
    public void SecondCampaignProcess_OnALiveDirectory_IsRefused_Exit2()
    {
        string dir = temp["live"];
        using (CampaignLock.Acquire(dir))
        {
            CliRun run = CliProcess.Run(["fuzz", "--out", dir, "--runs", "10", "--corpus", "corpus/seeds"]);

            Assert.True(run.ExitCode == 2, run.ToString());
            Assert.Equal($"eptfuzz: {dir} is in use by another running campaign or merge (it holds {Path.Combine(dir, ".lock")}); wait for it to stop, or choose another directory", run.Err.Trim());
            Assert.False(File.Exists(Path.Combine(dir, "stats.json")));
        }
    }

    [Fact]
    public void Resume_OfALiveDirectory_IsRefused_AndLeavesItsFilesAlone()
    {
        string dir = temp["resumed"];
        new Campaign(RealTargets.Campaign(dir, runs: 20)).Run(CancellationToken.None);
        string stats = File.ReadAllText(Path.Combine(dir, "stats.json"));
        string events = File.ReadAllText(Path.Combine(dir, "events.jsonl"));

        using (CampaignLock.Acquire(dir))
        {
            var refused = Assert.Throws<CampaignUsageException>(() => new Campaign(RealTargets.Campaign(dir, runs: 20) with { Resume = true }).Run(CancellationToken.None));
            Assert.Contains("in use by another running campaign", refused.Message, StringComparison.Ordinal);
        }

        Assert.Equal(stats, File.ReadAllText(Path.Combine(dir, "stats.json")));
        Assert.Equal(events, File.ReadAllText(Path.Combine(dir, "events.jsonl")));
    }

    [Fact]
    public void KilledCampaign_LeavesAStaleLock_ThatDoesNotBlockResume()
    {
        string dir = temp["killed"];
        using (var first = CliProcess.Start(["fuzz", "--out", dir, "--max-total-time", "120", "--corpus", "corpus/seeds"]))
        {
            // Killed once it has written its first stats.json (a bounded wait, not an assertion).
            var deadline = DateTime.UtcNow.AddMinutes(1);
            while (!File.Exists(Path.Combine(dir, "stats.json")) && !first.HasExited && DateTime.UtcNow < deadline)
            {
                Thread.Sleep(50);
            }

            Assert.False(first.HasExited, "the first campaign ended before it could be killed");
            first.Kill();
            first.WaitForExit();
        }

        Assert.True(File.Exists(Path.Combine(dir, CampaignLock.FileName)));
        CliRun resumed = CliProcess.Run(["fuzz", "--out", dir, "--resume", "--runs", "50", "--corpus", "corpus/seeds"]);
        Assert.True(resumed.ExitCode == 0, resumed.ToString());
    }
}

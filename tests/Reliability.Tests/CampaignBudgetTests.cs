using System.Text.RegularExpressions;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Reliability.Tests.Support;

namespace EptFuzz.Reliability.Tests;

/// <summary>
/// Issue 17, item 4 in campaigns: a campaign applies the planned-cost check that replay and gate
/// apply. A generated, mutated or seed case planned over the budget is refused before it runs,
/// counted with its reason, never run to a hang.
/// </summary>
public sealed partial class CampaignBudgetTests : IDisposable
{
    private const int Runs = 300;

    private readonly TempDir temp = new();

    public void Dispose() => temp.Dispose();

    [Fact]
    public void CasesPlannedOverTheBudget_AreRefusedBeforeRunning_CountedWithTheirReason()
    {
        // A seed whose plan is far over any small budget: 200 protects of a GiB split to 4K leaves.
        string corpus = temp["corpus"];
        Directory.CreateDirectory(corpus);
        var lines = new List<string> { "eptcase 1", "cpu maxphyaddr=46 page2m=0 page1g=0", "eptp mt=WB walk=4 ad=0" };
        lines.AddRange(Enumerable.Range(0, 200).Select(i => $"protect gpa=0x4000_0000 size=1G perm={(i % 2 == 0 ? "rw" : "r")}"));
        string seed = Path.Combine(corpus, "protects.ept");
        File.WriteAllLines(seed, lines);
        string dir = temp["campaign"];

        // 1 ms plans at most 10,000 page entries (40 MiB of 4K pages): every case that protects,
        // retypes or maps a GiB is over it.
        CliRun run = CliProcess.Run(["fuzz", "--seed", "1", "--runs", $"{Runs}", "--case-time", "0.001", "--corpus", corpus, "--out", dir]);

        Assert.True(run.ExitCode == 0, run.ToString());
        CampaignStats stats = CampaignStats.Load(dir, out string error) ?? throw new InvalidOperationException(error);
        Assert.True(stats.RejectedOverBudget > 1, $"only {stats.RejectedOverBudget} cases were refused");
        Assert.InRange(stats.RejectedOverBudget, 0, stats.Rejected);
        // Every claimed case either ran or was refused; the refused seed did not run either.
        Assert.Equal(Runs + 1, stats.Executions + stats.RejectedOverBudget);
        Assert.Equal(0, stats.Hangs);
        Assert.Contains($"eptfuzz: warning: corpus seed {seed} not used: {seed}:4:1: protect: the case's planned cost exceeds its time budget", run.Err, StringComparison.Ordinal);

        // The first refusals are kept with their reason, which names the step of the file kept;
        // replay with the same budget refuses that file at that step.
        string[] rejected = Directory.GetFiles(Path.Combine(dir, "rejected"), "*.ept");
        Assert.NotEmpty(rejected);
        foreach (string file in rejected)
        {
            string reason = File.ReadLines(file).First(l => l.StartsWith("# rejected: ", StringComparison.Ordinal));
            Match m = RefusedStep().Match(reason);
            Assert.True(m.Success, reason);
            CliRun replay = CliProcess.Run(["replay", file, "--case-time", "0.001"]);
            Assert.True(replay.ExitCode == 2, replay.ToString());
            Assert.Matches($@"^{Regex.Escape(file)}:\d+:1: {Regex.Escape(m.Groups["verb"].Value)}: the case's planned cost exceeds its time budget", replay.Err);
        }

        Assert.Contains(File.ReadLines(Path.Combine(dir, "events.jsonl")), l => l.Contains("\"type\":\"rejected\"", StringComparison.Ordinal) && l.Contains("planned cost exceeds", StringComparison.Ordinal));
    }

    [GeneratedRegex(@"^# rejected: (gen|mutant)-[0-9a-f]{16}\.ept: step \d+: (?<verb>[a-z-]+): the case's planned cost exceeds its time budget: .*\(--case-time\)$")]
    private static partial Regex RefusedStep();
}

using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Running;
using EptFuzz.Reliability.Tests.Support;

namespace EptFuzz.Reliability.Tests;

/// <summary>
/// Issue 17, item 4: a per-case time and memory budget. A case whose planned cost exceeds it is
/// refused before it runs, located like every other bad-input error; a case that runs past its
/// time is a timeout, its own verdict.
/// </summary>
public sealed class CaseBudgetTests : IDisposable
{
    private readonly TempDir temp = new();

    public void Dispose() => temp.Dispose();

    [Fact]
    public void ProtectsOverASplitGiB_AreRefusedBeforeRunning_AtTheStepThatCrossesTheTimeBudget()
    {
        // The probe's case: protects of a whole GiB on a processor without large pages (262,144 leaves each).
        var lines = new List<string> { "eptcase 1", "cpu maxphyaddr=46 page2m=0 page1g=0", "eptp mt=WB walk=4 ad=0", "map gpa=0x4000_0000 hpa=0x1_0000_0000 size=1G perm=rwx" };
        lines.AddRange(Enumerable.Range(0, 2000).Select(i => $"protect gpa=0x4000_0000 size=1G perm={(i % 2 == 0 ? "rw" : "r")}"));
        string file = temp["protects.ept"];
        File.WriteAllLines(file, lines);

        CliRun run = CliProcess.Run(["replay", file]);

        // Under the 30 s default, 1,144 steps of 262,144 entries at 100 ns fit: step 1,145 (line 1,148) crosses it.
        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.StartsWith($"{file}:1148:1: protect: the case's planned cost exceeds its time budget", run.Err, StringComparison.Ordinal);
        Assert.Contains("(--case-time)", run.Err, StringComparison.Ordinal);
    }

    [Fact]
    public void GiBMapsSplitToFourK_AreRefusedBeforeRunning_AtTheStepThatCrossesTheMemoryBudget()
    {
        var lines = new List<string> { "eptcase 1", "cpu maxphyaddr=52 page2m=0 page1g=0", "eptp mt=WB walk=4 ad=0" };
        lines.AddRange(Enumerable.Range(1, 1024).Select(i => $"map gpa=0x{(ulong)i << 30:x} hpa=0x{(ulong)i << 30:x} size=1G perm=rwx"));
        string file = temp["maps.ept"];
        File.WriteAllLines(file, lines);

        CliRun run = CliProcess.Run(["replay", file, "--case-memory", "64"]);

        // 64 MiB at 32 B an entry is 2,097,152 entries: the ninth GiB (line 12) crosses it.
        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.StartsWith($"{file}:12:1: map: the case's planned cost exceeds its memory budget", run.Err, StringComparison.Ordinal);
        Assert.Contains("(--case-memory)", run.Err, StringComparison.Ordinal);
    }

    [Fact]
    public void ACaseThatRunsThePoolDry_IsRefusedAsBadInput_LocatedLikeEveryOtherBadInput()
    {
        // Each GiB page split straight to 4K leaves (no 2M pages) takes a PD and 512 PTs: the
        // 128th such split (line 3 + 2 * 128) asks for more than the 65,536 pages of the pool.
        // The plan fits the default budget, so it is the run that refuses the case.
        var lines = new List<string> { "eptcase 1", "cpu maxphyaddr=46 page2m=0 page1g=1", "eptp mt=WB walk=4 ad=0" };
        for (ulong i = 1; i <= 128; i++)
        {
            lines.Add($"map gpa=0x{i << 30:x} hpa=0x{i << 30:x} size=1G perm=rwx");
            lines.Add($"  protect gpa=0x{i << 30:x} size=4K perm=r");
        }

        string file = temp["pool.ept"];
        File.WriteAllLines(file, lines);
        ParseResult parsed = CaseFile.Read(file);
        Assert.True(parsed.Succeeded, parsed.ErrorText());
        Assert.Null(CaseCost.Refusal(parsed.Case, CaseBudget.Default, file));

        CliRun replay = CliProcess.Run(["replay", file]);

        Assert.True(replay.ExitCode == 2, replay.ToString());
        string expected = $"{file}:259:3: protect: the case asks for more table pages than the hypervisor's pool allows; refused";
        Assert.StartsWith(expected, replay.Err, StringComparison.Ordinal);

        CliRun reduce = CliProcess.Run(["reduce", file, "--out", temp["pool.reduced.ept"]]);

        Assert.True(reduce.ExitCode == 2, reduce.ToString());
        Assert.StartsWith(expected, reduce.Err, StringComparison.Ordinal);
    }

    [Fact]
    public void TheCorpus_FitsTheDefaultBudget()
    {
        foreach (string file in Directory.EnumerateFiles(Path.Combine(CliProcess.Root, "corpus"), "*.ept", SearchOption.AllDirectories))
        {
            ParseResult parsed = CaseFile.Read(file);
            Assert.True(parsed.Succeeded, parsed.ErrorText());
            Assert.Null(CaseCost.Refusal(parsed.Case, CaseBudget.Default, file));
        }
    }

    [Fact]
    public void ACaseRunningPastItsTime_IsATimeout_AndItsTargetsAreAbandoned()
    {
        using var release = new ManualResetEventSlim(false);
        var options = RealTargets.Options(new BlockingTarget(release));
        ParseResult parsed = CaseFile.Read(Path.Combine(CliProcess.Root, "corpus", "seeds", "split_merge_roundtrip.ept"));
        Assert.True(parsed.Succeeded, parsed.ErrorText());

        using var runner = new BudgetedRun();
        CaseResult result = runner.Run(parsed.Case, options, new CaseBudget { Time = TimeSpan.FromMilliseconds(200) }, out bool abandoned);
        release.Set();

        Assert.Equal(CaseStatus.Timeout, result.Status);
        Assert.True(abandoned);
        Assert.StartsWith("timeout: the case ran past its time budget of 0.2 s (--case-time)", result.Message, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Infrastructure, ExitCodes.For([result]));
    }

    [Fact]
    public void CasesRunOnOneThread_UntilATimeoutAbandonsIt()
    {
        // Per-thread state (pools, an external target's process) must outlive a case: a thread
        // per case started a target process per case in replay and gate.
        using var release = new ManualResetEventSlim(true);
        var target = new BlockingTarget(release);
        var options = RealTargets.Options(target);
        ParseResult parsed = CaseFile.Read(Path.Combine(CliProcess.Root, "corpus", "seeds", "split_merge_roundtrip.ept"));
        Assert.True(parsed.Succeeded, parsed.ErrorText());
        var budget = new CaseBudget { Time = TimeSpan.FromMilliseconds(500) };
        using var runner = new BudgetedRun();

        runner.Run(parsed.Case, options, budget, out bool first);
        runner.Run(parsed.Case, options, budget, out bool second);
        release.Reset();
        CaseResult timedOut = runner.Run(parsed.Case, options, budget, out bool third);
        release.Set();
        CaseResult after = runner.Run(parsed.Case, options, budget, out bool fourth);

        Assert.False(first || second || fourth);
        Assert.True(third);
        Assert.Equal(CaseStatus.Timeout, timedOut.Status);
        Assert.NotEqual(CaseStatus.Timeout, after.Status);
        Assert.Equal(4, target.OpenedOn.Count);
        Assert.Equal(target.OpenedOn[0], target.OpenedOn[1]);
        Assert.Equal(target.OpenedOn[0], target.OpenedOn[2]);
        Assert.NotEqual(target.OpenedOn[2], target.OpenedOn[3]);
        Assert.NotEqual(Environment.CurrentManagedThreadId, target.OpenedOn[0]);
    }
}

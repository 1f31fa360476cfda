using EptFuzz.Contract;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Reliability.Tests.Support;
using EptFuzz.Targets.Vmx;
using EptFuzz.Targets.Vmx.Runner;

namespace EptFuzz.Reliability.Tests;

/// <summary>Issue 17, item 1: an emulator that cannot run is infrastructure (exit 3), never a divergence or a finding.</summary>
public sealed class InfrastructureTests : IDisposable
{
    private readonly TempDir temp = new();

    public void Dispose() => temp.Dispose();

    [Fact]
    public void Replay_OnKvmThatCannotRun_SaysUnavailable_Exit3()
    {
        // A PATH without QEMU: "kvm: unavailable: …" on any machine, with or without nested VMX.
        Directory.CreateDirectory(temp["empty"]);
        CliRun run = CliProcess.Run(["replay", "--targets", "model,impl,kvm", "corpus/seeds"], path: temp["empty"]);

        Assert.True(run.ExitCode == 3, run.ToString());
        Assert.StartsWith("eptfuzz: kvm: unavailable: ", run.Err, StringComparison.Ordinal);
        Assert.Single(run.Err.Trim().Split('\n'));
        Assert.False(CliProcess.HasStackTrace(run.Err + run.Out), run.ToString());
    }

    [Fact]
    public void Gate_WithABochsThatAlwaysExits1_IsInfrastructure_Exit3()
    {
        // A two-line script named bochs first on PATH. Where the BIOS images are installed (CI)
        // Bochs "runs" and fails twice; elsewhere it is unavailable for the missing BIOS: exit 3 both ways.
        Directory.CreateDirectory(temp["bin"]);
        temp.Script("bin/bochs", "exit 1");
        string path = temp["bin"] + ":" + Environment.GetEnvironmentVariable("PATH");
        CliRun run = CliProcess.Run(["gate", "--targets", "model,impl,bochs", "--random", "2", "--random-dir", temp["gate-random"]], path);

        Assert.True(run.ExitCode == 3, run.ToString());
        Assert.StartsWith("eptfuzz: bochs: ", run.Err, StringComparison.Ordinal);
        Assert.False(CliProcess.HasStackTrace(run.Err + run.Out), run.ToString());
    }

    [Fact]
    public void CapabilityBoot_FailingTwice_IsATargetFailure_NamingTheBoot()
    {
        BochsOptions fake = FakeBochs("exit 1");
        var target = new BochsTarget(fake);

        var failure = Assert.Throws<TargetFailureException>(() => target.Open(CpuCapabilities.Default));
        Assert.StartsWith("bochs: the capability boot failed, so no case can run: ", failure.Message, StringComparison.Ordinal);
        Assert.Contains("failed twice", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Campaign_WithABochsThatAlwaysExits1_StopsAsInfrastructure_WithoutAFinding()
    {
        BochsOptions fake = FakeBochs("exit 1");
        string dir = temp["campaign"];
        var options = RealTargets.Campaign(dir, runs: 1000, () => RealTargets.Options(new BochsTarget(fake)));

        CampaignSummary summary = new Campaign(options).Run(CancellationToken.None);

        Assert.Empty(summary.Findings);
        Assert.Empty(Directory.GetFiles(Path.Combine(dir, "findings")));
        Assert.True(summary.StoppedByInfrastructure, summary.StopReason);
        Assert.Equal(3, summary.ExitCode);
        Assert.StartsWith("infrastructure: 10 cases in a row could not run; the last: bochs: ", summary.StopReason, StringComparison.Ordinal);
        Assert.Equal(options.MaxConsecutiveInfrastructureFailures, summary.Final.InfrastructureFailures);
        Assert.True(summary.Final.Executions <= options.MaxConsecutiveInfrastructureFailures + options.Jobs, $"{summary.Final.Executions} executions");
        var stats = CampaignStats.Load(dir, out string error);
        Assert.True(stats is not null, error);
        Assert.Empty(stats.Findings);
        Assert.Equal(summary.Final.InfrastructureFailures, stats.InfrastructureFailures);
    }

    /// <summary>A script in place of bochs, with (empty) BIOS images so that it is not "unavailable".</summary>
    private BochsOptions FakeBochs(string body)
    {
        string dir = Directory.CreateDirectory(temp["fake-bochs"]).FullName;
        string bios = Path.Combine(dir, "bios");
        File.WriteAllText(bios, string.Empty);
        return new BochsOptions
        {
            Executable = temp.Script("fake-bochs/bochs", body),
            BiosImage = bios,
            VgaBiosImage = bios,
            Timeout = TimeSpan.FromSeconds(20),
        };
    }
}

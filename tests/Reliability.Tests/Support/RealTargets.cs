using EptFuzz.Contract;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;

namespace EptFuzz.Reliability.Tests.Support;

/// <summary>Run options and campaign options over the real model and implementation (plus any extra target).</summary>
internal static class RealTargets
{
    public static RunOptions Options(params ITarget[] extra) => new()
    {
        Hypervisor = () => new EptFuzz.Impl.Hypervisor.EptHypervisor(),
        Targets = [new EptFuzz.Targets.Model.ModelTarget(), new EptFuzz.Impl.Target.ImplTarget(), .. extra],
    };

    public static CampaignOptions Campaign(string outDir, long? runs, Func<RunOptions>? targets = null) => new()
    {
        OutDir = outDir,
        Targets = targets ?? (() => Options()),
        Seed = 0x5eed,
        Runs = runs,
        Profile = new GeneratorProfile { Steps = 32 },
        // Status ticks are time-driven; make them rare so that the work is bounded by --runs alone.
        StatusInterval = TimeSpan.FromHours(1),
        CommandLine = "eptfuzz fuzz --seed 0x5eed",
    };
}

using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using EptFuzz.Impl.Hypervisor;
using EptFuzz.Impl.Target;
using EptFuzz.Targets.Model;

using Xunit;

namespace EptFuzz.Mutation.Campaign;

/// <summary>
/// One fixed-seed campaign against the implementation, with the campaign's defaults: a mutant
/// of the implementation is killed when the campaign finds anything (a divergence, a failed
/// intent check, a crash). EPTFUZZ_MUTATION_RUNS sets the executions (default 3,000).
/// </summary>
public sealed class CampaignAsTheOnlyTest : IDisposable
{
    private readonly DirectoryInfo temp = Directory.CreateTempSubdirectory("eptfuzz-mutation-");

    public void Dispose() => temp.Delete(recursive: true);

    [Fact]
    public void FixedSeedCampaign_FindsNothing()
    {
        long runs = long.TryParse(Environment.GetEnvironmentVariable("EPTFUZZ_MUTATION_RUNS"), out long n) ? n : 3_000;
        var summary = new Harness.Fuzzing.Campaign(new CampaignOptions
        {
            OutDir = temp.FullName,
            Targets = () => new RunOptions { Hypervisor = () => new EptHypervisor(), Targets = [new ModelTarget(), new ImplTarget()] },
            Seed = 0x5EED_E97F,
            Runs = runs,
            Jobs = 1,
            ReduceCap = TimeSpan.Zero,
            StatusInterval = TimeSpan.FromHours(1),
            HangThreshold = TimeSpan.FromSeconds(30),
        }).Run(CancellationToken.None);
        Assert.True(summary.Findings.Count == 0, string.Join('\n', summary.Findings.Select(f => f.Signature)));
        Assert.Equal(0, summary.Final.InfrastructureFailures);
    }
}

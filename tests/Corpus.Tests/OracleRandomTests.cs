using EptFuzz.Harness.Comparing;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using EptFuzz.Impl.Hypervisor;
using EptFuzz.Impl.Target;
using EptFuzz.Targets.Model;
using EptFuzz.Targets.Vmx;

namespace EptFuzz.Corpus.Tests;

/// <summary>
/// A fixed-seed random campaign of 200 generated cases on model, impl and Bochs (the gate's random
/// set): everything the oracle can express agrees, or is a known divergence; the oracle never
/// fails as infrastructure; and it really answers a share of the probes.
/// </summary>
public sealed class OracleRandomTests
{
    public const int Cases = 200;

    [OracleFact]
    public void RandomSet_AgreesOnBochs_OrIsAKnownDivergence()
    {
        var known = KnownDivergencesFile.Load(Path.Combine(RepositoryRoot.Corpus, "known-divergences.txt"));
        var options = new RunOptions
        {
            Hypervisor = () => new EptHypervisor(),
            Targets = [new ModelTarget(), new ImplTarget(), new BochsTarget()],
            Known = known,
        };
        var failures = new List<string>();
        int compared = 0, comparedProbes = 0;
        foreach (var c in RandomSet.Generate(RandomSet.DefaultSeed, Cases))
        {
            var result = CaseRunner.Run(c, options);
            compared += result.Counters.Compared;
            comparedProbes += result.Counters.Probes - result.Counters.StaleAllowed;
            if (result.Status is not (CaseStatus.Passed or CaseStatus.KnownDivergence))
            {
                failures.Add($"{c.SourceName}: {result.Status} {result.Message}");
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {Cases} generated cases failed on Bochs:\n" + string.Join("\n", failures));
        // model-vs-impl gives at most one comparison per probe; more means the oracle answered too.
        Assert.True(compared > comparedProbes, $"the oracle compared nothing: {compared} comparisons over {comparedProbes} probes");
    }
}

using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using EptFuzz.Impl.Hypervisor;
using EptFuzz.Impl.Target;
using EptFuzz.Reference.Rules;
using EptFuzz.Targets.Model;

namespace EptFuzz.Harness.Tests.Fuzzing;

/// <summary>The fuzzer against the real targets: the reference model (baseline, rule ids) and the C# implementation.</summary>
public sealed class RealTargetsTests : IDisposable
{
    private readonly DirectoryInfo temp = Directory.CreateTempSubdirectory("eptfuzz-real-");

    public void Dispose() => temp.Delete(recursive: true);

    private static RunOptions ModelAndImpl() => new()
    {
        Hypervisor = () => new EptHypervisor(),
        Targets = [new ModelTarget(), new ImplTarget()],
    };

    [Fact]
    public void Campaign_OnModelAndImpl_CoversModelledRules_AndEveryFindingReproducesFromItsReducedFile()
    {
        int modelled = RuleCatalog.All.Count(r => r.Modelled);
        var summary = new Campaign(new CampaignOptions
        {
            OutDir = temp.FullName,
            Targets = ModelAndImpl,
            Seed = 1,
            Runs = 400,
            RulesModelled = modelled,
            ReduceCap = TimeSpan.FromSeconds(20),
            StatusInterval = TimeSpan.FromHours(1),
        }).Run(CancellationToken.None);

        Assert.Equal(modelled, summary.Final.RulesModelled);
        Assert.InRange(summary.Final.RulesHit, modelled / 2, RuleCatalog.All.Count);
        Assert.Equal(0, summary.Final.Rejected);
        Assert.Equal(0, summary.Final.InfrastructureFailures);
        foreach (FindingRecord f in summary.Findings)
        {
            string path = Path.Combine(temp.FullName, f.ReducedPath);
            var parsed = CaseParser.Parse(File.ReadAllText(path), path);
            Assert.True(parsed.Succeeded, parsed.ErrorText());
            Assert.True(parsed.Case.Steps.Length <= f.StepsBefore);
            Assert.Equal(f.Signature, Reducer.KeyOf(CaseRunner.Run(parsed.Case, ModelAndImpl())));
        }
    }
}

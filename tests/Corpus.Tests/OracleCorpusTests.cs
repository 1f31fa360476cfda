using EptFuzz.Harness.Comparing;
using EptFuzz.Harness.Running;
using EptFuzz.Impl.Hypervisor;
using EptFuzz.Impl.Target;
using EptFuzz.Targets.Model;
using EptFuzz.Targets.Vmx;

namespace EptFuzz.Corpus.Tests;

/// <summary>
/// The conformance corpus on a real VMX implementation (Bochs): everything agrees with the model
/// and the implementation, or is a documented known divergence. Probes the oracle cannot express
/// are counted as unsupported; the test also demands that most probes really were compared.
/// </summary>
public sealed class OracleCorpusTests
{
    [OracleFact]
    public void Corpus_AgreesOnBochs_OrIsAKnownDivergence()
    {
        var known = KnownDivergencesFile.Corpus();
        var options = new RunOptions
        {
            Hypervisor = () => new EptHypervisor(),
            Targets = [new ModelTarget(), new ImplTarget(), new BochsTarget()],
            Known = known,
        };
        var failures = new List<string>();
        int compared = 0, unsupported = 0;
        foreach (var file in Directory.EnumerateFiles(RepositoryRoot.Corpus, "*.ept", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var result = CorpusReplay.RunFile(file, options);
            compared += result.Counters.Compared;
            unsupported += result.Counters.Unsupported;
            if (result.Status is not (CaseStatus.Passed or CaseStatus.KnownDivergence))
            {
                failures.Add($"{result.Status} {result.Message}\n{result.Detail}");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n\n", failures));
        // model-vs-impl pairs alone give about half; the oracle must have answered a real share.
        Assert.True(compared > unsupported, $"the oracle compared too little: {compared} comparisons, {unsupported} unsupported answers");
    }
}

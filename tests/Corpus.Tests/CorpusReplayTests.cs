using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Comparing;
using EptFuzz.Harness.Running;
using EptFuzz.Impl.Hypervisor;
using EptFuzz.Impl.Target;
using EptFuzz.Reference.Rules;
using EptFuzz.Targets.Model;

namespace EptFuzz.Corpus.Tests;

/// <summary>Every file in corpus/ replays clean on model and impl (the data-driven conformance suite).</summary>
public sealed class CorpusReplayTests
{
    public static TheoryData<string> AllCases()
    {
        var data = new TheoryData<string>();
        foreach (var file in Directory.EnumerateFiles(RepositoryRoot.Corpus, "*.ept", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetRelativePath(RepositoryRoot.Corpus, file));
        }

        return data;
    }

    private static RunOptions Options(IRunObserver? observer = null) => new()
    {
        Hypervisor = () => new EptHypervisor(),
        Targets = [new ModelTarget(), new ImplTarget()],
        Known = KnownDivergencesFile.Corpus(),
        Observer = observer,
    };

    [Theory]
    [MemberData(nameof(AllCases))]
    public void Case_ReplaysClean_OnModelAndImpl(string relative)
    {
        var result = CorpusReplay.RunFile(Path.Combine(RepositoryRoot.Corpus, relative), Options());
        Assert.True(result.Status is CaseStatus.Passed or CaseStatus.KnownDivergence, $"{result.Status}: {result.Message}\n{result.Detail}");
    }

    [Fact]
    public void ConformanceCases_FireEveryModelledRule()
    {
        var collector = new RuleCollector();
        foreach (var file in RepositoryRoot.Cases("conformance"))
        {
            var result = CorpusReplay.RunFile(file, Options(collector));
            Assert.True(result.Status == CaseStatus.Passed, $"{file}: {result.Message}");
        }

        var missing = RuleCatalog.All.Where(r => r.Modelled && !collector.Fired.Contains((int)r.Id)).Select(r => r.Name).ToList();
        Assert.True(missing.Count == 0, "modelled rules no conformance case fires: " + string.Join(", ", missing));
    }

    [Fact]
    public void ConformanceCases_StateTheirOutcomeAndCarryExpectations()
    {
        foreach (var file in RepositoryRoot.Cases("conformance"))
        {
            var name = Path.GetFileNameWithoutExtension(file);
            Assert.True(name.Contains('_', StringComparison.Ordinal), $"{name}: conformance names read Rule_Situation_Outcome");
            var parsed = CaseParser.Parse(File.ReadAllText(file), file);
            Assert.True(parsed.Succeeded, parsed.ErrorText());
            Assert.True(parsed.Case!.Steps.Any(s => s.Expectation is not null), $"{name}: a conformance case states its expected outcome with =>");
        }
    }

    private sealed class RuleCollector : IRunObserver
    {
        public RuleBits Fired { get; private set; }

        public void OnOperation(int stepIndex, Step step, ApiResult result)
        {
        }

        public void OnProbe(int stepIndex, Step step, Observation baseline) => Fired = Fired.Union(baseline.Rules);
    }
}

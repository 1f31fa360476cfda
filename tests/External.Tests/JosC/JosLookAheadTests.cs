using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using EptFuzz.Impl.Target;
using EptFuzz.Targets.External;
using EptFuzz.Targets.Model;
using Xunit.Abstractions;

namespace EptFuzz.External.Tests.JosC;

/// <summary>
/// Journal mode (PROTOCOL.md): the C SDK reports its writes, so the harness sends a case's
/// operations and lookups ahead. It must change nothing but speed: every case gets the same
/// verdict, the same signature at the same step, and the same comparisons as one command at a
/// time (<c>--target-one-at-a-time</c>), on the clean sample and on builds with bugs of each kind
/// (a divergence, a missing invalidation, an accounting fault, a crash under ASan).
/// </summary>
public sealed class JosLookAheadTests(ITestOutputHelper output)
{
    private const int Cases = 400;

    [SkippableNativeFact]
    public void LookAhead_GivesTheVerdictsOfOneCommandAtATime()
    {
        foreach (string build in new[] { "jos-c-test", "bug-SPLIT_DROPS_TYPE", "bug-NO_INVEPT", "bug-FREE_LINKED", "bug-USE_AFTER_FREE" })
        {
            string path = JosSample.Build(build);
            using var ahead = new ExternalTarget(new ExternalTargetOptions { Path = path });
            using var oneByOne = new ExternalTarget(new ExternalTargetOptions { Path = path, LookAhead = false });
            var aheadOptions = OptionsOf(ahead);
            var oneOptions = OptionsOf(oneByOne);
            var cases = RandomSet.Generate(0x10_0CA4EAD, Cases, new GeneratorProfile { Features = ahead.Features });
            int diverged = 0;
            foreach (var @case in cases)
            {
                var a = CaseRunner.Run(@case, aheadOptions);
                var b = CaseRunner.Run(@case, oneOptions);
                string where = $"{build} {@case.SourceName}:\n{CasePrinter.Print(@case)}";
                Assert.True(a.Status == b.Status, $"{where}\nahead: {a.Status} {a.Message}\none at a time: {b.Status} {b.Message}");
                Assert.Equal(b.Divergence?.ToString(), a.Divergence?.ToString());
                Assert.Equal(b.StepNumber, a.StepNumber);
                Assert.Equal(b.Counters, a.Counters);
                diverged += a.Status == CaseStatus.Diverged ? 1 : 0;
            }

            output.WriteLine($"{build}: {Cases} cases, {diverged} diverged, the same verdicts both ways");
            // The clean build passes everything; each bug build must give the comparison something to compare.
            Assert.True(build == "jos-c-test" ? diverged == 0 : diverged > 0, $"{build}: {diverged} of {Cases} cases diverged");
        }
    }

    private static RunOptions OptionsOf(ExternalTarget external)
    {
        var translators = new List<ITarget> { new ModelTarget(), new ImplTarget() };
        if (external.Walker is { } walker)
        {
            translators.Add(walker);
        }

        return new RunOptions { Hypervisor = external.CreateHypervisor, Features = external.Features, Targets = translators };
    }
}

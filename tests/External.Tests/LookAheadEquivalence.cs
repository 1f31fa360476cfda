using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using EptFuzz.Targets.External;
using EptFuzz.Targets.External.Protocol;

namespace EptFuzz.External.Tests;

/// <summary>
/// Journal mode (PROTOCOL.md) must change nothing but speed: run the same generated cases against
/// one build with the commands sent ahead and one command at a time
/// (<c>--target-one-at-a-time</c>), and require the same verdict, signature, step and counters
/// for every case. Shared by the C and the Rust SDK's tests (each SDK keeps its own journal).
/// </summary>
internal static class LookAheadEquivalence
{
    public const ulong Seed = 0x10_0CA4EAD;

    /// <returns>How many cases diverged (the same number both ways).</returns>
    public static int Check(string executable, int cases)
    {
        using var ahead = new ExternalTarget(new ExternalTargetOptions { Path = executable });
        using var oneByOne = new ExternalTarget(new ExternalTargetOptions { Path = executable, LookAhead = false });
        Assert.True(ahead.Declare().Operations.HasFlag(TargetOperations.Journal), $"{executable} does not declare a journal: nothing would be sent ahead");
        var aheadOptions = ExternalDetection.OptionsFor(ahead);
        var oneOptions = ExternalDetection.OptionsFor(oneByOne);
        int diverged = 0;
        foreach (var @case in RandomSet.Generate(Seed, cases, new GeneratorProfile { Features = ahead.Features }))
        {
            var a = CaseRunner.Run(@case, aheadOptions);
            var b = CaseRunner.Run(@case, oneOptions);
            string where = $"{Path.GetFileName(executable)} {@case.SourceName}:\n{CasePrinter.Print(@case)}";
            Assert.True(a.SameVerdictAs(b), $"{where}\nahead: {a.Status} {a.Message} {a.Counters}\none at a time: {b.Status} {b.Message} {b.Counters}");
            diverged += a.Status == CaseStatus.Diverged ? 1 : 0;
        }

        return diverged;
    }
}

using Xunit.Abstractions;

namespace EptFuzz.External.Tests.JosC;

/// <summary>
/// The C SDK's journal: sending a case's operations and lookups ahead gives every case the verdict
/// of one command at a time, on the clean sample and on builds with bugs of each kind (a
/// divergence, a missing invalidation, an accounting fault, a crash under ASan).
/// </summary>
public sealed class JosLookAheadTests(ITestOutputHelper output)
{
    private const int Cases = 400;

    [SkippableNativeFact]
    public void LookAhead_GivesTheVerdictsOfOneCommandAtATime()
    {
        foreach (string build in new[] { "jos-c-test", "bug-SPLIT_DROPS_TYPE", "bug-NO_INVEPT", "bug-FREE_LINKED", "bug-USE_AFTER_FREE" })
        {
            int diverged = LookAheadEquivalence.Check(JosSample.Build(build), Cases);
            output.WriteLine($"{build}: {Cases} cases, {diverged} diverged, the same verdicts both ways");
            // The clean build passes everything; each bug build must give the comparison something to compare.
            Assert.True(build == "jos-c-test" ? diverged == 0 : diverged > 0, $"{build}: {diverged} of {Cases} cases diverged");
        }
    }
}

using Xunit.Abstractions;

namespace EptFuzz.External.Tests.KeosRust;

/// <summary>
/// The Rust SDK's journal: sending a case's operations and lookups ahead gives every case the
/// verdict of one command at a time, on the clean sample and on builds with a missing
/// invalidation, a freed-but-linked table and a panic.
/// </summary>
public sealed class KeosRustLookAheadTests(ITestOutputHelper output)
{
    private const int Cases = 150;

    [CargoFact]
    public void LookAhead_GivesTheVerdictsOfOneCommandAtATime()
    {
        DirectoryInfo temp = Directory.CreateTempSubdirectory("eptfuzz-keos-ahead-");
        try
        {
            foreach (string? bug in new[] { null, "bug-no-invept", "bug-free-linked-table", "bug-unwrap-missing-table" })
            {
                int diverged = LookAheadEquivalence.Check(KeosRustSample.Build(Path.Combine(temp.FullName, "build"), bug), Cases);
                output.WriteLine($"{bug ?? "keos-rust"}: {Cases} cases, {diverged} diverged, the same verdicts both ways");
                Assert.True(bug is null ? diverged == 0 : diverged > 0, $"{bug ?? "keos-rust"}: {diverged} of {Cases} cases diverged");
            }
        }
        finally
        {
            temp.Delete(recursive: true);
        }
    }
}

using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// The fixed-seed random set <c>eptfuzz gate</c> adds to the corpus replay: case i has seed
/// <c>Prng.Derive(seed, i)</c>, so the set is the same on every machine and every run.
/// </summary>
public static class RandomSet
{
    /// <summary>The default gate seed ("gate" in ASCII).</summary>
    public const ulong DefaultSeed = 0x6761_7465;

    public static IReadOnlyList<EptCase> Generate(ulong seed, int count, GeneratorProfile? profile = null)
    {
        if (count < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, "the random set size must not be negative");
        }

        GeneratorProfile p = profile ?? GeneratorProfile.Default;
        var cases = new EptCase[count];
        for (int i = 0; i < count; i++)
        {
            ulong caseSeed = Prng.Derive(seed, (ulong)i);
            cases[i] = Running.CaseFeatures.Restrict(CaseGenerator.Generate(caseSeed, p), p.Features) with { SourceName = $"random/{seed:x}-{i:d5}-{caseSeed:x16}.ept" };
        }

        return cases;
    }
}

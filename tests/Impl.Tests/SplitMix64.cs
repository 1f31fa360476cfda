namespace EptFuzz.Impl.Tests;

/// <summary>A seeded generator for randomized tests (never System.Random, never the clock).</summary>
internal struct SplitMix64(ulong seed)
{
    private ulong state = seed;

    public ulong Next()
    {
        ulong z = state += 0x9E37_79B9_7F4A_7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, bound) (bound small; the modulo bias is irrelevant for tests).</summary>
    public int Below(int bound) => (int)(Next() % (ulong)bound);
}

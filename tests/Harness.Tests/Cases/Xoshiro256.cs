namespace EptFuzz.Harness.Tests.Cases;

/// <summary>
/// xoshiro256** seeded through SplitMix64: the tests' own generator, so a seed gives the same
/// cases on every machine and runtime (System.Random's sequence is not a stable contract).
/// </summary>
internal sealed class Xoshiro256
{
    private ulong s0;
    private ulong s1;
    private ulong s2;
    private ulong s3;

    public Xoshiro256(ulong seed)
    {
        s0 = SplitMix64(ref seed);
        s1 = SplitMix64(ref seed);
        s2 = SplitMix64(ref seed);
        s3 = SplitMix64(ref seed);
    }

    public ulong Next()
    {
        ulong result = ulong.RotateLeft(s1 * 5, 7) * 9;
        ulong t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = ulong.RotateLeft(s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, bound) by rejection, for bound &gt; 0.</summary>
    public int Below(int bound)
    {
        ulong b = (ulong)bound;
        ulong limit = ulong.MaxValue - ulong.MaxValue % b;
        ulong x;
        do
        {
            x = Next();
        }
        while (x >= limit);

        return (int)(x % b);
    }

    public bool Chance(int oneIn) => Below(oneIn) == 0;

    public T Pick<T>(IReadOnlyList<T> items) => items[Below(items.Count)];

    private static ulong SplitMix64(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

namespace EptFuzz.Harness.Tests.Cases;

/// <summary>
/// xoshiro256** seeded through SplitMix64: the tests' own generator, so a seed gives the same
/// cases on every machine and runtime (System.Random's sequence is not a stable contract).
/// </summary>
internal sealed class Xoshiro256
{
    private ulong _s0;
    private ulong _s1;
    private ulong _s2;
    private ulong _s3;

    public Xoshiro256(ulong seed)
    {
        _s0 = SplitMix64(ref seed);
        _s1 = SplitMix64(ref seed);
        _s2 = SplitMix64(ref seed);
        _s3 = SplitMix64(ref seed);
    }

    public ulong Next()
    {
        ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
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

namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// The fuzzer's own random numbers: xoshiro256** seeded through SplitMix64 (as Fuzzlyn does).
/// The sequence depends on the seed alone, never on the machine, the runtime or the clock, so a
/// seed regenerates the same case byte for byte anywhere. <see cref="System.Random"/> is never
/// used: its algorithm is not specified across .NET versions.
/// </summary>
/// <remarks>
/// A second mode draws from given bytes instead (<see cref="FromChoices"/>): libFuzzer's input is
/// the sequence of choices the generator makes, so each of its byte-level mutations changes a few
/// choices and the rest of the case stays put.
/// </remarks>
public sealed class Prng
{
    /// <summary>The seed of the stream that continues a choice sequence once its bytes run out.</summary>
    private const ulong ChoicesTailSeed = 0x6C69_6246_757A_7A00UL;

    private ulong s0, s1, s2, s3;

    /// <summary>The choices to draw from first (null: the seeded generator alone).</summary>
    private readonly byte[]? choices;
    private int position;

    public Prng(ulong seed)
    {
        ulong x = seed;
        s0 = SplitMix64(ref x);
        s1 = SplitMix64(ref x);
        s2 = SplitMix64(ref x);
        s3 = SplitMix64(ref x);
    }

    private Prng(byte[] choices)
        : this(ChoicesTailSeed)
    {
        this.choices = choices;
    }

    /// <summary>
    /// Draws from <paramref name="choices"/>: <see cref="Below(ulong)"/> reads as many bytes as its
    /// bound needs (one for a bound up to 256, big-endian) and takes them modulo the bound;
    /// <see cref="NextU64"/> reads eight and <see cref="Coin"/> one. Once the bytes run out, the
    /// draws continue from a fixed-seed stream, so every byte string, the empty one included, is a
    /// complete sequence of choices, and the same bytes always give the same draws.
    /// </summary>
    public static Prng FromChoices(ReadOnlySpan<byte> choices) => new(choices.ToArray());

    /// <summary>How many of the choice bytes the draws so far have read (0 for a seeded generator).</summary>
    public int ChoicesRead => position;

    /// <summary>
    /// A seed for stream <paramref name="stream"/> of <paramref name="seed"/> (a worker, a shard, a
    /// case index): one SplitMix64 finalization of both, so neighbouring streams are unrelated.
    /// </summary>
    public static ulong Derive(ulong seed, ulong stream)
    {
        ulong x = seed ^ (stream * 0xD1B54A32D192ED03UL);
        _ = SplitMix64(ref x);
        return SplitMix64(ref x);
    }

    public static ulong SplitMix64(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong NextU64() => choices is null ? NextState() : ChoiceBytes(8);

    private ulong NextState()
    {
        ulong result = RotateLeft(s1 * 5, 7) * 9;
        ulong t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = RotateLeft(s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, bound) (Lemire's multiply-shift with rejection); bound must be positive.</summary>
    public ulong Below(ulong bound)
    {
        if (bound == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(bound), "bound must be positive");
        }

        if (choices is not null)
        {
            // The bytes the bound needs: 1 for up to 256 values, 2 for up to 65,536, ….
            int bytes = Math.Max(1, (64 - System.Numerics.BitOperations.LeadingZeroCount(bound - 1) + 7) / 8);
            return ChoiceBytes(bytes) % bound;
        }

        // Lemire's nearly divisionless method: the division runs only when the low half is small.
        // Math.BigMul is one MUL instruction; UInt128 arithmetic is a call per operator.
        ulong high = Math.BigMul(NextState(), bound, out ulong low);
        if (low < bound)
        {
            ulong threshold = (0 - bound) % bound;
            while (low < threshold)
            {
                high = Math.BigMul(NextState(), bound, out low);
            }
        }

        return high;
    }

    public int Below(int bound) => (int)Below((ulong)bound);

    /// <summary>True with probability <paramref name="percent"/>/100.</summary>
    public bool Chance(int percent) => Below(100) < percent;

    public bool Coin() => choices is null ? (NextState() >> 63) != 0 : (ChoiceBytes(1) & 1) != 0;

    public T Pick<T>(ReadOnlySpan<T> items) => items[Below(items.Length)];

    public T Pick<T>(IReadOnlyList<T> items) => items[Below(items.Count)];

    /// <summary>An index drawn with the given integer weights.</summary>
    public int Weighted(ReadOnlySpan<int> weights)
    {
        int total = 0;
        foreach (int w in weights)
        {
            total += w;
        }

        int r = Below(total);
        for (int i = 0; i < weights.Length; i++)
        {
            r -= weights[i];
            if (r < 0)
            {
                return i;
            }
        }

        return weights.Length - 1;
    }

    /// <summary>The next <paramref name="count"/> choice bytes, big-endian; past the end, bytes of the fixed-seed stream.</summary>
    private ulong ChoiceBytes(int count)
    {
        ulong value = 0;
        for (int i = 0; i < count; i++)
        {
            ulong next = position < choices!.Length ? choices[position++] : NextState() >> 56;
            value = (value << 8) | next;
        }

        return value;
    }

    private static ulong RotateLeft(ulong x, int k) => (x << k) | (x >> (64 - k));
}

using System.Numerics;

namespace EptFuzz.Contract;

/// <summary>
/// A fixed 256-bit set of rule indices: the coverage signal. Cheap to copy, OR and compare; the
/// names behind the indices come from the target that fills it (<see cref="ITarget.RuleNames"/>).
/// </summary>
public readonly record struct RuleBits(ulong W0, ulong W1, ulong W2, ulong W3)
{
    public const int Capacity = 256;

    public bool IsEmpty => (W0 | W1 | W2 | W3) == 0;

    public int Count => BitOperations.PopCount(W0) + BitOperations.PopCount(W1) + BitOperations.PopCount(W2) + BitOperations.PopCount(W3);

    public bool Contains(int index) => ((Word(index) >> (index & 63)) & 1) != 0;

    public RuleBits With(int index)
    {
        if ((uint)index >= Capacity)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, "rule index must be below 256");
        }

        ulong bit = 1UL << (index & 63);
        return (index >> 6) switch
        {
            0 => this with { W0 = W0 | bit },
            1 => this with { W1 = W1 | bit },
            2 => this with { W2 = W2 | bit },
            _ => this with { W3 = W3 | bit },
        };
    }

    public RuleBits Union(RuleBits other) => new(W0 | other.W0, W1 | other.W1, W2 | other.W2, W3 | other.W3);

    /// <summary>Bits in this set that are not in <paramref name="other"/>.</summary>
    public RuleBits Except(RuleBits other) => new(W0 & ~other.W0, W1 & ~other.W1, W2 & ~other.W2, W3 & ~other.W3);

    public IEnumerable<int> Indices()
    {
        for (int i = 0; i < Capacity; i++)
        {
            if (Contains(i))
            {
                yield return i;
            }
        }
    }

    private ulong Word(int index) => (index >> 6) switch
    {
        0 => W0,
        1 => W1,
        2 => W2,
        3 => W3,
        _ => 0,
    };
}

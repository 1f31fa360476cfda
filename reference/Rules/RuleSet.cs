using System.Numerics;

namespace EptFuzz.Reference.Rules;

/// <summary>
/// A 256-bit set of <see cref="RuleId"/> indices: which rules fired during one evaluation. It is the
/// fuzzer's coverage signal, so adding a rule is one OR on a word, never a string or allocation.
/// </summary>
public readonly record struct RuleSet(ulong W0, ulong W1, ulong W2, ulong W3)
{
    public const int Capacity = 256;

    public static RuleSet Empty => default;

    public bool IsEmpty => (W0 | W1 | W2 | W3) == 0;

    public int Count => BitOperations.PopCount(W0) + BitOperations.PopCount(W1) + BitOperations.PopCount(W2) + BitOperations.PopCount(W3);

    public bool Contains(RuleId rule)
    {
        int index = (int)rule;
        ulong word = (index >> 6) switch
        {
            0 => W0,
            1 => W1,
            2 => W2,
            _ => W3,
        };
        return ((word >> (index & 63)) & 1) != 0;
    }

    public RuleSet With(RuleId rule)
    {
        int index = (int)rule;
        ulong bit = 1UL << (index & 63);
        return (index >> 6) switch
        {
            0 => this with { W0 = W0 | bit },
            1 => this with { W1 = W1 | bit },
            2 => this with { W2 = W2 | bit },
            _ => this with { W3 = W3 | bit },
        };
    }

    public RuleSet Union(RuleSet other) => new(W0 | other.W0, W1 | other.W1, W2 | other.W2, W3 | other.W3);

    /// <summary>Rules in this set that are not in <paramref name="other"/>.</summary>
    public RuleSet Except(RuleSet other) => new(W0 & ~other.W0, W1 & ~other.W1, W2 & ~other.W2, W3 & ~other.W3);

    /// <summary>The members in index order (for reports and tests; not for the hot path).</summary>
    public IEnumerable<RuleId> Members()
    {
        for (int i = 0; i < RuleCatalog.All.Count; i++)
        {
            if (Contains((RuleId)i))
            {
                yield return (RuleId)i;
            }
        }
    }
}

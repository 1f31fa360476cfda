using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Fuzzing.Simplifiers;

/// <summary>The reducer's simplifiers, one per kind of step, and the variants they offer for a step.</summary>
public static class StepSimplifiers
{
    /// <summary>Every unit, one per step kind that has simpler forms.</summary>
    public static IReadOnlyList<StepSimplifier> All { get; } =
    [
        new CpuSimplifier(), new EptpSimplifier(), new GuestSimplifier(),
        new MapSimplifier(), new UnmapSimplifier(), new ProtectSimplifier(), new RetypeSimplifier(), new SplitSimplifier(),
        new EditSimplifier(), new GMapSimplifier(), new GEditSimplifier(),
        new AccessSimplifier(), new EntrySimplifier(), new IdentityMapSimplifier(),
    ];

    private static readonly Dictionary<Type, StepSimplifier> ByType = All.ToDictionary(s => s.StepType);

    /// <summary>The unit for <paramref name="step"/>'s kind; null for a kind with no simpler form.</summary>
    public static StepSimplifier? For(Step step)
    {
        ArgumentNullException.ThrowIfNull(step);
        return ByType.GetValueOrDefault(step.GetType());
    }

    /// <summary>Simpler variants of one step, most promising first: without its expectation, then what its kind's unit offers.</summary>
    public static IEnumerable<Step> Variants(Step step)
    {
        ArgumentNullException.ThrowIfNull(step);
        if (step.Expectation is not null)
        {
            yield return step with { Expectation = null };
        }

        if (For(step) is { } unit)
        {
            foreach (Step variant in unit.Simplify(step))
            {
                yield return variant;
            }
        }
    }
}

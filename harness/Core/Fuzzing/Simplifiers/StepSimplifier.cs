using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Fuzzing.Simplifiers;

/// <summary>
/// One named simplification of the reducer, for one kind of step (as a classic reducer's passes):
/// simpler variants of a step, most promising first. A variant is only offered; the reducer runs
/// it and keeps it when it is smaller and still shows the failure.
/// </summary>
public abstract class StepSimplifier
{
    /// <summary>The kind of step this unit simplifies.</summary>
    public abstract Type StepType { get; }

    /// <summary>Simpler variants of <paramref name="step"/>; none when it is not of <see cref="StepType"/>.</summary>
    public abstract IEnumerable<Step> Simplify(Step step);
}

/// <summary>A <see cref="StepSimplifier"/> for steps of type <typeparamref name="T"/>.</summary>
public abstract class StepSimplifier<T> : StepSimplifier
    where T : Step
{
    public sealed override Type StepType => typeof(T);

    public sealed override IEnumerable<Step> Simplify(Step step) => step is T s ? Simplify(s) : [];

    /// <summary>Simpler variants of <paramref name="step"/>, most promising first.</summary>
    public abstract IEnumerable<T> Simplify(T step);
}

using EptFuzz.Contract;

namespace EptFuzz.Harness.Cases;

/// <summary>
/// One line of a case: a verb with its keys and an optional expectation. Each verb is its own
/// sealed record (one per file group: configuration, operations, raw edits, observations).
/// </summary>
/// <remarks>
/// Optional keys are nullable: null means "not written", so the printer reproduces the file
/// and the reducer can drop a key by setting it to null. Equality is structural over what the
/// step means; <see cref="Position"/> is not part of it, so a printed and re-parsed case equals
/// the original although its lines moved.
/// </remarks>
public abstract record Step
{
    /// <summary>Line and column of the verb; <see cref="SourcePosition.None"/> for steps built in code.</summary>
    public SourcePosition Position { get; init; }

    /// <summary>The <c>=&gt; …</c> part, or null for a differential probe / an unchecked operation.</summary>
    public Expectation? Expectation { get; init; }

    /// <summary>The verb as written in a case (<c>map</c>, <c>read</c>, …).</summary>
    public abstract string Verb { get; }

    /// <summary>1-based source line of the step (0 when built in code).</summary>
    public int Line => Position.Line;

    /// <summary>What kind of expectation fits this step.</summary>
    public abstract StepCategory Category { get; }

    public virtual bool Equals(Step? other) =>
        other is not null && EqualityContract == other.EqualityContract && Equals(Expectation, other.Expectation);

    public override int GetHashCode() => HashCode.Combine(EqualityContract, Expectation);
}

/// <summary>The families of steps; each takes its own kind of expectation.</summary>
public enum StepCategory : byte
{
    /// <summary>Configuration, API operations and raw edits: <c>=&gt; ok</c> or <c>=&gt; ERRORNAME</c>.</summary>
    Operation,
    /// <summary><c>read</c>/<c>write</c>/<c>fetch</c>: <c>ok hpa=</c>, <c>violation</c>, <c>misconfig</c>, <c>page-fault</c>.</summary>
    Access,
    /// <summary><c>entry</c>: <c>=&gt; entry a= d= [value=]</c>.</summary>
    Entry,
    /// <summary><c>vmentry</c>: <c>=&gt; vmentry ok|fail</c>.</summary>
    VmEntry,
}

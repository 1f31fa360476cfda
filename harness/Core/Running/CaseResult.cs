using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Comparing;
using EptFuzz.Harness.Reporting;

namespace EptFuzz.Harness.Running;

/// <summary>How one case ended. Ordered by how much it matters to a release gate.</summary>
public enum CaseStatus
{
    /// <summary>Every compared observation agreed and every expectation held.</summary>
    Passed,
    /// <summary>
    /// The case needs something the hypervisor under test does not implement (an external target
    /// declares what it implements): not run, never a pass, never a failure. The message says what.
    /// </summary>
    Unsupported,
    /// <summary>A divergence whose signature is listed in known-divergences.txt.</summary>
    KnownDivergence,
    /// <summary>Targets disagreed, or code under test crashed or broke an invariant (a finding).</summary>
    Diverged,
    /// <summary>A step's <c>=&gt;</c> expectation did not hold.</summary>
    ExpectationFailed,
    /// <summary>The case file is malformed or asks for absurd resources (exit 2).</summary>
    BadInput,
    /// <summary>A target could not run (emulator missing, crashed, timed out): never a finding (exit 3).</summary>
    InfrastructureFailure,
    /// <summary>
    /// The case ran past its time budget (<c>--case-time</c>) and was abandoned: not a divergence,
    /// since no answer was compared; exit 3 like an infrastructure failure, reported as its own verdict.
    /// </summary>
    Timeout,
}

/// <summary>Counters of one case run.</summary>
public sealed record CaseCounters
{
    public int Steps { get; init; }
    public int Probes { get; init; }
    public int Compared { get; init; }
    public int StaleAllowed { get; init; }
    public int Unsupported { get; init; }
    public int Expectations { get; init; }
}

/// <summary>One translator's answer to the probe where a case stopped, with what is needed to show it.</summary>
/// <param name="RuleNames">The target's rule names, to name the ids in <see cref="Observation.Rules"/> (empty when it fires none).</param>
public sealed record TargetObservation(string Target, Observation Observation, IReadOnlyList<string> RuleNames);

/// <summary>
/// The outcome of replaying one case, as data: the typed signature, the step where the case
/// stopped and each translator's observation there. Text, <c>.ept</c> headers, JSON and HTML are
/// rendered from it by <see cref="CaseReport"/>; nothing parses them back.
/// </summary>
public sealed record CaseResult
{
    public required string File { get; init; }
    public required CaseStatus Status { get; init; }
    /// <summary>One line for people: what went wrong, or empty when passed.</summary>
    public string Message { get; init; } = string.Empty;
    /// <summary>Source line of the step where the case stopped (0 when none).</summary>
    public int Line { get; init; }
    public int Column { get; init; }
    /// <summary>The divergence (or fault) signature, for dedup and known-divergences.txt, when there is a finding.</summary>
    public DivergenceSignature? Divergence { get; init; }
    /// <summary>The signature's text (<c>STEP|TARGET:OUTCOME|TARGET:OUTCOME|FIELDS</c>), or null.</summary>
    public string? Signature => Divergence?.ToString();
    /// <summary>Why a known divergence is known.</summary>
    public string? KnownReason { get; init; }
    /// <summary>The step where the case stopped, and its 1-based number in the case (0 when none).</summary>
    public Step? Step { get; init; }
    public int StepNumber { get; init; }
    /// <summary>Every translator's observation of the probe where the case stopped (empty for an operation).</summary>
    public IReadOnlyList<TargetObservation> Observations { get; init; } = [];
    /// <summary>With three or more translators: who is out of step, or null.</summary>
    public string? Triage { get; init; }
    /// <summary>
    /// Free text that is not an observation: the located parse errors of a bad file, the exception
    /// (and the target's log) of a crash or an infrastructure failure, an invariant's account.
    /// </summary>
    public string? Diagnostics { get; init; }
    /// <summary>The command that replays the case (empty when the case has no file to replay).</summary>
    public string Replay { get; init; } = string.Empty;
    public CaseCounters Counters { get; init; } = new();
    public TimeSpan Duration { get; init; }

    /// <summary>Multi-line report: the step, signature, each side's observation and walk, rules fired, replay command.</summary>
    public string Detail => CaseReport.Detail(this);

    /// <summary>
    /// The same verdict as <paramref name="other"/>: status, signature, step and counters (what two
    /// ways of running one case, such as an external target's journal mode and one command at a
    /// time, must agree on).
    /// </summary>
    public bool SameVerdictAs(CaseResult other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return Status == other.Status && Divergence?.ToString() == other.Divergence?.ToString() && StepNumber == other.StepNumber && Counters == other.Counters;
    }

    public bool IsFailure => Status is CaseStatus.Diverged or CaseStatus.ExpectationFailed or CaseStatus.BadInput or CaseStatus.InfrastructureFailure or CaseStatus.Timeout;
}

/// <summary>Process exit codes, everywhere (README.md documents them).</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    public const int Divergence = 1;
    public const int BadInput = 2;
    public const int Infrastructure = 3;

    /// <summary>The exit code for a set of results: bad input first, then infrastructure, then divergence.</summary>
    public static int For(IEnumerable<CaseResult> results)
    {
        var statuses = results.Select(r => r.Status).ToHashSet();
        if (statuses.Contains(CaseStatus.BadInput))
        {
            return BadInput;
        }

        if (statuses.Contains(CaseStatus.InfrastructureFailure) || statuses.Contains(CaseStatus.Timeout))
        {
            return Infrastructure;
        }

        return statuses.Contains(CaseStatus.Diverged) || statuses.Contains(CaseStatus.ExpectationFailed) ? Divergence : Ok;
    }
}

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
    /// <summary>Targets disagreed (a finding).</summary>
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

/// <summary>The outcome of replaying one case file.</summary>
public sealed record CaseResult
{
    public required string File { get; init; }
    public required CaseStatus Status { get; init; }
    /// <summary>One line for people: what went wrong, or empty when passed.</summary>
    public string Message { get; init; } = string.Empty;
    /// <summary>Source line of the step where the case stopped (0 when none).</summary>
    public int Line { get; init; }
    public int Column { get; init; }
    /// <summary>Divergence signature (for dedup and known-divergences.txt), when diverged.</summary>
    public string? Signature { get; init; }
    /// <summary>Why a known divergence is known.</summary>
    public string? KnownReason { get; init; }
    /// <summary>Multi-line report: each side's observation and walk, rules fired, replay command.</summary>
    public string Detail { get; init; } = string.Empty;
    public CaseCounters Counters { get; init; } = new();
    public TimeSpan Duration { get; init; }

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

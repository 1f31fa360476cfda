namespace EptFuzz.Contract;

/// <summary>How code under test failed, as opposed to answering.</summary>
public enum TargetFaultKind : byte
{
    /// <summary>The target process died (a signal, an exit, a panic, an unhandled exception).</summary>
    Crash,
    /// <summary>The target did not answer a message within its time limit.</summary>
    Hang,
    /// <summary>The target answered something the protocol does not allow.</summary>
    Protocol,
    /// <summary>The target's table-page bookkeeping broke an invariant (leak, double free, freed page still linked).</summary>
    Accounting,
}

/// <summary>
/// Code under test failed on this input: a finding, not an infrastructure failure. Thrown by a
/// hypervisor or a target session at the step that made it fail. The runner turns it into a
/// finding whose signature is <c>STEP|TARGET:KIND|-:-|DETAIL</c> (no addresses in
/// <see cref="Detail"/>), so the reducer can keep "still crashes with SIGSEGV" while it shrinks
/// the case. Compare <see cref="TargetFailureException"/>: the tool could not run the target at
/// all (missing executable, emulator absent), exit 3, never a finding.
/// </summary>
public sealed class TargetFaultException : Exception
{
    public TargetFaultException(string target, TargetFaultKind kind, string detail, string message, string? log = null)
        : base($"{target}: {message}")
    {
        Target = target;
        Kind = kind;
        Detail = detail;
        Log = log;
    }

    public string Target { get; }

    public TargetFaultKind Kind { get; }

    /// <summary>A short stable word for the signature: a signal name, "exit-1", "timeout", a protocol rule.</summary>
    public string Detail { get; }

    /// <summary>What the target printed before it failed (the tail of its stderr), or null.</summary>
    public string? Log { get; }

    /// <summary>
    /// The case step whose command failed, when the target answers some commands later than the
    /// step that asked (a pipelined lookup); null means the step being run.
    /// </summary>
    public int? StepIndex { get; init; }

    /// <summary>The outcome word in a signature: crash, hang, protocol, accounting.</summary>
    public string OutcomeText => Kind switch
    {
        TargetFaultKind.Crash => "crash",
        TargetFaultKind.Hang => "hang",
        TargetFaultKind.Protocol => "protocol",
        TargetFaultKind.Accounting => "accounting",
        _ => Kind.ToString(),
    };
}

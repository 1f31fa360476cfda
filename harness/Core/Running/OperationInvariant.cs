using EptFuzz.Contract;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Running;

/// <summary>What an invariant sees after an operation step.</summary>
/// <param name="Hypervisor">The hypervisor that ran the operation (its memory image holds the tables).</param>
/// <param name="Result">The operation's answer; failed operations are checked too (they must undo what they allocated).</param>
/// <param name="PagesWritten">The 4 KiB pages (addresses) the operation's writes went to: an invariant may keep what it learned of the others.</param>
/// <param name="TablesRawWritten">
/// A raw write (an edit, a poke into a held table page) has changed a table page, now or earlier
/// in the case: the linkage may be broken on purpose from here on.
/// </param>
public readonly record struct OperationContext(IEptHypervisor Hypervisor, Step Step, ApiResult Result, IReadOnlyList<ulong> PagesWritten, bool TablesRawWritten);

/// <summary>An invariant an operation broke: a finding <c>STEP|HYPERVISOR:KIND|-:-|DETAIL</c>.</summary>
/// <param name="Kind">The outcome word of the signature (<c>accounting</c>).</param>
/// <param name="Detail">A short stable word (no addresses): <c>leak</c>, <c>freed-linked</c>, <c>linked-twice</c>.</param>
/// <param name="Message">For people: what is wrong, naming the pages.</param>
public sealed record InvariantViolation(string Kind, string Detail, string Message);

/// <summary>
/// A property every operation must keep, checked by the runner after each operation step in
/// every command (replay, gate, fuzz, reduce). One instance serves every case and thread: what it
/// keeps of a case is kept per thread (a case runs on one thread) and dropped by <see cref="BeginCase"/>.
/// </summary>
public interface IOperationInvariant
{
    /// <summary>A case begins on this thread: forget what was kept of the one before.</summary>
    void BeginCase();

    /// <summary>Null when the invariant holds (or cannot be checked here).</summary>
    InvariantViolation? Check(in OperationContext context);
}

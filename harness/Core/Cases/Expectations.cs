using EptFuzz.Contract;

namespace EptFuzz.Harness.Cases;

/// <summary>
/// The <c>=&gt; …</c> part of a step. Optional fields are nullable (null = not written, so not
/// checked). Equality ignores <see cref="Position"/>.
/// </summary>
public abstract record Expectation
{
    /// <summary>Line and column of the first word after <c>=&gt;</c>.</summary>
    public SourcePosition Position { get; init; }

    public virtual bool Equals(Expectation? other) => other is not null && EqualityContract == other.EqualityContract;

    public override int GetHashCode() => EqualityContract.GetHashCode();
}

/// <summary><c>=&gt; ok</c> or <c>=&gt; ERRORNAME</c>: the result of an operation.</summary>
public sealed record ResultExpectation(ApiResult Result) : Expectation;

/// <summary><c>=&gt; ok hpa=B [mt=T] [size=S]</c>: the access completes.</summary>
public sealed record TranslatedExpectation(Hpa Hpa, MemoryType? MemoryType = null, ulong? Size = null) : Expectation;

/// <summary><c>=&gt; violation qual=Q [gpa=A] [gla=V]</c>: EPT violation (exit reason 48).</summary>
public sealed record ViolationExpectation(ulong Qualification, Gpa? Gpa = null, Gva? GuestLinearAddress = null) : Expectation;

/// <summary><c>=&gt; misconfig [gpa=A]</c>: EPT misconfiguration (exit reason 49).</summary>
public sealed record MisconfigExpectation(Gpa? Gpa = null) : Expectation;

/// <summary><c>=&gt; page-fault code=E</c>: a guest #PF with error code E.</summary>
public sealed record PageFaultExpectation(uint ErrorCode) : Expectation;

/// <summary><c>=&gt; entry a=0/1 d=0/1 [value=V]</c>: for <c>entry</c> steps.</summary>
public sealed record EntryExpectation(bool Accessed, bool Dirty, ulong? Value = null) : Expectation;

/// <summary><c>=&gt; vmentry ok</c> / <c>=&gt; vmentry fail</c>.</summary>
public sealed record VmEntryExpectation(bool Ok) : Expectation;

/// <summary>Short constructors for generators and tests.</summary>
public static class Expect
{
    public static ResultExpectation Ok { get; } = new(ApiResult.Ok);

    public static ResultExpectation Result(ApiResult result) => new(result);

    public static TranslatedExpectation Translated(Hpa hpa, MemoryType? memoryType = null, ulong? size = null) => new(hpa, memoryType, size);

    public static ViolationExpectation Violation(ulong qualification, Gpa? gpa = null, Gva? gla = null) => new(qualification, gpa, gla);

    public static MisconfigExpectation Misconfig(Gpa? gpa = null) => new(gpa);

    public static PageFaultExpectation PageFault(uint errorCode) => new(errorCode);

    public static EntryExpectation Entry(bool accessed, bool dirty, ulong? value = null) => new(accessed, dirty, value);

    public static VmEntryExpectation VmEntry(bool ok) => new(ok);
}

using EptFuzz.Contract;

namespace EptFuzz.Harness.Cases;

// Observations: what every target must agree on (or match against an expectation).

/// <summary>
/// <c>read|write|fetch gpa=A</c> (guest-physical, A &lt; 2^52) or <c>read|write|fetch gva=V
/// [cpl=0/3]</c> (through guest paging). Exactly one of <see cref="Gpa"/> and <see cref="Gva"/>
/// is set; <see cref="Cpl"/> only with <see cref="Gva"/>.
/// </summary>
public sealed record AccessStep(AccessKind Kind, Gpa? Gpa = null, Gva? Gva = null, byte? Cpl = null) : Step
{
    public override string Verb => Kind switch
    {
        AccessKind.Read => "read",
        AccessKind.Write => "write",
        _ => "fetch",
    };

    public override StepCategory Category => StepCategory.Access;

    public static AccessStep Physical(AccessKind kind, Gpa gpa) => new(kind, Gpa: gpa);

    public static AccessStep Linear(AccessKind kind, Gva gva, byte? cpl = null) => new(kind, Gva: gva, Cpl: cpl);

    /// <summary>The contract's access; CPL defaults to 0.</summary>
    public Access ToAccess() => Gva is { } gva
        ? Access.ThroughPaging(Kind, gva, Cpl ?? 0)
        : Access.Physical(Kind, Gpa ?? default);
}

/// <summary><c>entry gpa=A level=L</c>: the EPT entry at level L on the walk for A (A &lt; 2^52).</summary>
public sealed record EntryStep(Gpa Gpa, EptLevel Level) : Step
{
    public override string Verb => "entry";

    public override StepCategory Category => StepCategory.Entry;
}

/// <summary><c>vmentry</c>: whether VM entry accepts the current EPTP and controls.</summary>
public sealed record VmEntryStep : Step
{
    public override string Verb => "vmentry";

    public override StepCategory Category => StepCategory.VmEntry;
}

using EptFuzz.Contract;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Fuzzing.Simplifiers;

/// <summary>An access: the CPL key dropped, then a simpler guest-physical address, or a guest-linear one at the start of its page.</summary>
public sealed class AccessSimplifier : StepSimplifier<AccessStep>
{
    public override IEnumerable<AccessStep> Simplify(AccessStep a)
    {
        if (a.Cpl is not null) yield return a with { Cpl = null };
        if (a.Gpa is { } gpa)
        {
            foreach (ulong x in Simpler.Addresses(gpa.Value, 1)) yield return a with { Gpa = new Gpa(x) };
        }
        else if (a.Gva is { } gva && (gva.Value & 0xFFF) != 0)
        {
            yield return a with { Gva = new Gva(gva.Value & ~0xFFFUL) };
        }
    }
}

/// <summary><c>entry</c>: simpler page-aligned addresses.</summary>
public sealed class EntrySimplifier : StepSimplifier<EntryStep>
{
    public override IEnumerable<EntryStep> Simplify(EntryStep e)
    {
        foreach (ulong x in Simpler.Addresses(e.Gpa.Value, 4096)) yield return e with { Gpa = new Gpa(x) };
    }
}

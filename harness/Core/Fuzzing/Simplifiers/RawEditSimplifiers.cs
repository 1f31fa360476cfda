using System.Numerics;
using EptFuzz.Contract;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Fuzzing.Simplifiers;

/// <summary><c>edit</c>: each key dropped, a multi-bit set or clear down to its lowest bit, then simpler page-aligned addresses.</summary>
public sealed class EditSimplifier : StepSimplifier<EditStep>
{
    public override IEnumerable<EditStep> Simplify(EditStep e)
    {
        if (e.LeafHpa is not null) yield return e with { LeafHpa = null };
        if (e.Set is not null) yield return e with { Set = null };
        if (e.Clear is not null) yield return e with { Clear = null };
        if (e.Set is { } set && BitOperations.PopCount(set) > 1) yield return e with { Set = set & (0 - set) };
        if (e.Clear is { } clear && BitOperations.PopCount(clear) > 1) yield return e with { Clear = clear & (0 - clear) };
        foreach (ulong a in Simpler.Addresses(e.Gpa.Value, 4096)) yield return e with { Gpa = new Gpa(a) };
    }
}

/// <summary><c>gmap</c>: smaller sizes, then no permissions.</summary>
public sealed class GMapSimplifier : StepSimplifier<GMapStep>
{
    public override IEnumerable<GMapStep> Simplify(GMapStep g)
    {
        foreach (ulong size in Simpler.Sizes(g.Size)) yield return g with { Size = size };
        if (g.Permissions != GuestPagePermissions.None) yield return g with { Permissions = GuestPagePermissions.None };
    }
}

/// <summary><c>gedit</c> with both a set and a clear: one of them dropped.</summary>
public sealed class GEditSimplifier : StepSimplifier<GEditStep>
{
    public override IEnumerable<GEditStep> Simplify(GEditStep g)
    {
        if (g.Set is not null && g.Clear is not null)
        {
            yield return g with { Set = null };
            yield return g with { Clear = null };
        }
    }
}

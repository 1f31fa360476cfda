using EptFuzz.Contract;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Fuzzing.Simplifiers;

/// <summary><c>map</c>: optional keys dropped, smaller pages, fewer permissions, the host address equal to the guest one, then simpler addresses.</summary>
public sealed class MapSimplifier : StepSimplifier<MapStep>
{
    public override IEnumerable<MapStep> Simplify(MapStep m)
    {
        if (m.MemoryType is not null) yield return m with { MemoryType = null };
        if (m.IgnorePat is not null) yield return m with { IgnorePat = null };
        foreach (ulong size in Simpler.Sizes(m.Size)) yield return m with { Size = size };
        foreach (EptPermissions p in Simpler.Permissions(m.Permissions)) yield return m with { Permissions = p };
        if (m.Hpa.Value != m.Gpa.Value) yield return m with { Hpa = new Hpa(m.Gpa.Value) };
        foreach (ulong a in Simpler.Addresses(m.Hpa.Value, m.Size)) yield return m with { Hpa = new Hpa(a) };
        foreach (ulong a in Simpler.Addresses(m.Gpa.Value, m.Size)) yield return m with { Gpa = new Gpa(a) };
    }
}

/// <summary><c>unmap</c>: smaller sizes, then simpler page-aligned addresses.</summary>
public sealed class UnmapSimplifier : StepSimplifier<UnmapStep>
{
    public override IEnumerable<UnmapStep> Simplify(UnmapStep u)
    {
        foreach (ulong size in Simpler.Sizes(u.Size)) yield return u with { Size = size };
        foreach (ulong a in Simpler.Addresses(u.Gpa.Value, 4096)) yield return u with { Gpa = new Gpa(a) };
    }
}

/// <summary><c>protect</c>: smaller sizes, fewer permissions, then simpler page-aligned addresses.</summary>
public sealed class ProtectSimplifier : StepSimplifier<ProtectStep>
{
    public override IEnumerable<ProtectStep> Simplify(ProtectStep p)
    {
        foreach (ulong size in Simpler.Sizes(p.Size)) yield return p with { Size = size };
        foreach (EptPermissions q in Simpler.Permissions(p.Permissions)) yield return p with { Permissions = q };
        foreach (ulong a in Simpler.Addresses(p.Gpa.Value, 4096)) yield return p with { Gpa = new Gpa(a) };
    }
}

/// <summary><c>retype</c>: the ignore-PAT key dropped, smaller sizes, write-back.</summary>
public sealed class RetypeSimplifier : StepSimplifier<RetypeStep>
{
    public override IEnumerable<RetypeStep> Simplify(RetypeStep r)
    {
        if (r.IgnorePat is not null) yield return r with { IgnorePat = null };
        foreach (ulong size in Simpler.Sizes(r.Size)) yield return r with { Size = size };
        if (r.MemoryType != MemoryType.WB) yield return r with { MemoryType = MemoryType.WB };
    }
}

/// <summary><c>split</c>: simpler page-aligned addresses.</summary>
public sealed class SplitSimplifier : StepSimplifier<SplitStep>
{
    public override IEnumerable<SplitStep> Simplify(SplitStep s)
    {
        foreach (ulong a in Simpler.Addresses(s.Gpa.Value, 4096)) yield return s with { Gpa = new Gpa(a) };
    }
}

/// <summary><c>identity-map</c> with an offset: the plain identity map.</summary>
public sealed class IdentityMapSimplifier : StepSimplifier<IdentityMapStep>
{
    public override IEnumerable<IdentityMapStep> Simplify(IdentityMapStep im)
    {
        if (im.Offset is not null)
        {
            yield return new IdentityMapStep { Position = im.Position };
        }
    }
}

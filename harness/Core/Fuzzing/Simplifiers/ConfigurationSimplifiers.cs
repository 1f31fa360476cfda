using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Fuzzing.Simplifiers;

/// <summary><c>cpu</c>: each capability key dropped (the default processor has it).</summary>
public sealed class CpuSimplifier : StepSimplifier<CpuStep>
{
    public override IEnumerable<CpuStep> Simplify(CpuStep c)
    {
        if (c.MaxPhyAddr is not null) yield return c with { MaxPhyAddr = null };
        if (c.ExecuteOnly is not null) yield return c with { ExecuteOnly = null };
        if (c.Page2M is not null) yield return c with { Page2M = null };
        if (c.Page1G is not null) yield return c with { Page1G = null };
        if (c.AccessedDirty is not null) yield return c with { AccessedDirty = null };
        if (c.Mbec is not null) yield return c with { Mbec = null };
        if (c.Walk5 is not null) yield return c with { Walk5 = null };
        if (c.AdvancedExitInfo is not null) yield return c with { AdvancedExitInfo = null };
        if (c.EptpUc is not null) yield return c with { EptpUc = null };
        if (c.EptpWb is not null) yield return c with { EptpWb = null };
    }
}

/// <summary><c>eptp</c>: each key dropped; a raw EPTP replaced by the hypervisor's own.</summary>
public sealed class EptpSimplifier : StepSimplifier<EptpStep>
{
    public override IEnumerable<EptpStep> Simplify(EptpStep e)
    {
        if (e.Raw is not null)
        {
            yield return new EptpStep { Position = e.Position };
            yield break;
        }

        if (e.MemoryType is not null) yield return e with { MemoryType = null };
        if (e.WalkLength is not null) yield return e with { WalkLength = null };
        if (e.AccessedDirty is not null) yield return e with { AccessedDirty = null };
    }
}

/// <summary><c>guest</c> with paging on: each control bit key dropped.</summary>
public sealed class GuestSimplifier : StepSimplifier<GuestStep>
{
    public override IEnumerable<GuestStep> Simplify(GuestStep g)
    {
        if (!g.Paging)
        {
            yield break;
        }

        if (g.Wp is not null) yield return g with { Wp = null };
        if (g.Nxe is not null) yield return g with { Nxe = null };
        if (g.Smep is not null) yield return g with { Smep = null };
        if (g.Pat is not null) yield return g with { Pat = null };
    }
}

using EptFuzz.Contract;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Running;

/// <summary>Which hypervisor features a step needs: what decides "unsupported" for a target that declares less.</summary>
public static class CaseFeatures
{
    /// <summary>The features <paramref name="step"/> asks of the hypervisor's API (None for probes and raw edits of EPT entries).</summary>
    public static HypervisorFeatures Of(Step step) => step switch
    {
        MapStep m => m.Size switch
        {
            1UL << 30 => HypervisorFeatures.Map1G,
            1UL << 21 => HypervisorFeatures.Map2M,
            _ => HypervisorFeatures.Map4K,
        },
        UnmapStep => HypervisorFeatures.Unmap,
        ProtectStep => HypervisorFeatures.Protect,
        RetypeStep => HypervisorFeatures.Retype,
        SplitStep => HypervisorFeatures.Split,
        MergeStep => HypervisorFeatures.Merge,
        MemoryStep or IdentityMapStep => HypervisorFeatures.IdentityMap,
        InveptStep => HypervisorFeatures.Invept,
        EptpStep { Raw: null } e => (e.WalkLength == 5 ? HypervisorFeatures.Walk5 : 0) | (e.AccessedDirty == true ? HypervisorFeatures.AccessedDirty : 0),
        ControlsStep { Mbec: true } => HypervisorFeatures.Mbec,
        GuestStep { Paging: true } or GMapStep or GEditStep => HypervisorFeatures.GuestPaging,
        _ => HypervisorFeatures.None,
    };

    /// <summary>The first step that needs something outside <paramref name="available"/>, with what it needs; null when every step is supported.</summary>
    public static (int Index, HypervisorFeatures Missing)? FirstUnsupported(EptCase @case, HypervisorFeatures available)
    {
        if (available == HypervisorFeatures.All)
        {
            return null;
        }

        for (int i = 0; i < @case.Steps.Length; i++)
        {
            var missing = Of(@case.Steps[i]) & ~available;
            if (missing != HypervisorFeatures.None)
            {
                return (i, missing);
            }
        }

        return null;
    }

    /// <summary>
    /// The case with every step the hypervisor cannot run removed or narrowed: a map of a page size it
    /// lacks becomes a 4 KiB map of the same addresses (huge pages then come from raw edits, as a
    /// boot loader makes them), an EPTP or controls step loses the fields it lacks, anything else
    /// it lacks is dropped. Deterministic, so a seed still regenerates the same case for the same target.
    /// </summary>
    public static EptCase Restrict(EptCase @case, HypervisorFeatures available)
    {
        if (available == HypervisorFeatures.All || FirstUnsupported(@case, available) is null)
        {
            return @case;
        }

        var steps = new List<Step>(@case.Steps.Length);
        foreach (var step in @case.Steps)
        {
            if (Narrow(step, available) is { } kept)
            {
                steps.Add(kept);
            }
        }

        return @case with { Steps = [.. steps] };
    }

    private static Step? Narrow(Step step, HypervisorFeatures available)
    {
        var missing = Of(step) & ~available;
        if (missing == HypervisorFeatures.None)
        {
            return step;
        }

        return step switch
        {
            MapStep m when available.HasFlag(HypervisorFeatures.Map4K) => m with { Size = 1UL << 12 },
            EptpStep e => e with
            {
                WalkLength = missing.HasFlag(HypervisorFeatures.Walk5) ? null : e.WalkLength,
                AccessedDirty = missing.HasFlag(HypervisorFeatures.AccessedDirty) ? null : e.AccessedDirty,
            },
            ControlsStep c => c with { Mbec = null },
            _ => null,
        };
    }

    /// <summary>"split", "map size=1G", …: the feature in the case language's words.</summary>
    public static string Describe(HypervisorFeatures missing) => missing switch
    {
        HypervisorFeatures.Map4K => "map size=4K",
        HypervisorFeatures.Map2M => "map size=2M",
        HypervisorFeatures.Map1G => "map size=1G",
        HypervisorFeatures.IdentityMap => "memory/identity-map",
        HypervisorFeatures.Walk5 => "eptp walk=5",
        HypervisorFeatures.AccessedDirty => "eptp ad=1",
        HypervisorFeatures.Mbec => "controls mbec=1",
        HypervisorFeatures.GuestPaging => "guest paging (guest, gmap, gedit)",
        _ => missing.ToString().ToLowerInvariant(),
    };
}

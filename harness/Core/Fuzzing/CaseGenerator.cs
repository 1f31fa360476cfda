using EptFuzz.Contract;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// Generates whole cases from a seed. (seed, <see cref="Version"/>, cpu profile) determine the
/// case, and therefore its printed bytes, on any machine: the only randomness is <see cref="Prng"/>.
/// </summary>
/// <remarks>
/// A case is: <c>cpu</c>, <c>eptp</c>, sometimes <c>controls</c>, sometimes a memory map with
/// <c>identity-map</c> or a guest paging set-up, then a random mix of operations, raw edits,
/// guest mappings and probes, with more probes after raw edits and an <c>invept</c> now and then
/// so that the raw edits get compared. Every address comes from <see cref="StepFactory"/>, which
/// biases it to table-index edges, huge-page boundaries and the MAXPHYADDR edge.
/// </remarks>
public static class CaseGenerator
{
    /// <summary>Bump when the same seed would generate different bytes.</summary>
    public const int Version = 2;

    public static EptCase Generate(ulong seed, GeneratorProfile profile) =>
        Generate(new Prng(seed), profile, $"gen-{seed:x16}.ept");

    /// <summary>
    /// The case that <paramref name="rng"/>'s draws choose: a seeded generator's, or a byte
    /// string's (<see cref="Prng.FromChoices"/>, the libFuzzer entry point's decoder). Any
    /// sequence of draws gives a valid case: every draw is in range by construction.
    /// </summary>
    public static EptCase Generate(Prng rng, GeneratorProfile profile, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(rng);
        ArgumentNullException.ThrowIfNull(profile);
        if (profile.Validate() is { } why)
        {
            throw new ArgumentException(why, nameof(profile));
        }

        var steps = new List<Step>(profile.Steps);
        CpuStep cpuStep = Cpu(rng, profile.Cpu);
        steps.Add(cpuStep);
        CpuCapabilities cpu = cpuStep.ToCapabilities();
        var factory = new StepFactory(rng, cpu);

        EptpStep eptp = Eptp(rng, cpu);
        steps.Add(eptp);
        factory.Learn(eptp);
        if (cpu.Mbec && rng.Chance(70))
        {
            var controls = new ControlsStep(true);
            steps.Add(controls);
            factory.Learn(controls);
        }
        else if (rng.Chance(5))
        {
            var controls = new ControlsStep(rng.Coin() ? false : null);
            steps.Add(controls);
            factory.Learn(controls);
        }

        // Identity maps are the slowest steps to run (hundreds of leaves): rare, and small.
        if (rng.Chance(5))
        {
            steps.AddRange(factory.MemoryMapSetUp());
        }

        if (rng.Chance(35))
        {
            steps.AddRange(factory.GuestSetUp());
        }

        bool rawSinceInvept = false;
        var next = new List<Step>(4);
        while (steps.Count < profile.Steps)
        {
            next.Clear();
            NextSteps(rng, factory, rawSinceInvept, profile.ProbeWeight, next);
            foreach (Step step in next)
            {
                if (steps.Count >= profile.Steps)
                {
                    break;
                }

                if (step is EditStep or PokeStep or GEditStep)
                {
                    rawSinceInvept = true;
                }
                else if (step is InveptStep)
                {
                    rawSinceInvept = false;
                }

                steps.Add(step);
                factory.Learn(step);
            }
        }

        return new EptCase(steps, sourceName: sourceName);
    }

    private static void NextSteps(Prng rng, StepFactory f, bool rawSinceInvept, int probeWeight, List<Step> into)
    {
        if (rawSinceInvept && rng.Chance(15))
        {
            into.Add(new InveptStep(rng.Chance(80) ? InveptType.SingleContext : InveptType.Global));
            return;
        }

        // operation, probe, raw edit, poke, guest map, guest edit, restrict guest tables, late eptp,
        // a guest map with a PAT index, guest paging off again
        int choice = rng.Weighted([42, probeWeight, 7, 2, f.GuestPaging ? 6 : 0, f.GuestPaging ? 2 : 0, f.GuestPaging ? 2 : 0, 1, f.GuestPaging ? 2 : 0, f.GuestPaging ? 1 : 0]);
        switch (choice)
        {
            case 0:
                into.Add(f.Operation());
                break;
            case 1:
                into.Add(f.Probe());
                break;
            case 2:
                into.Add(f.Edit());
                break;
            case 3:
                into.Add(f.Poke());
                break;
            case 4:
                into.Add(f.GMap());
                break;
            case 5:
                into.Add(f.GEdit());
                break;
            case 6:
                into.Add(f.RestrictGuestTables());
                break;
            case 7:
                into.Add(LateEptp(rng, f));
                break;
            case 8:
                into.AddRange(f.TypedGMap());
                break;
            default:
                into.Add(rng.Chance(5) ? f.GuestOff() : f.GMap());
                break;
        }
    }

    /// <summary>A later <c>eptp</c>: a raw value to try the VM-entry checks, or the named fields again.</summary>
    private static Step LateEptp(Prng rng, StepFactory f)
    {
        if (rng.Chance(60))
        {
            // [2:0] memory type, [5:3] walk length - 1, [6] A/D, [11:7] reserved, [51:12] root.
            ulong raw = (rng.Chance(80) ? rng.Pick<ulong>([0, 6, 6, 1, 2, 7]) : rng.Below(8UL))
                | ((rng.Chance(80) ? (ulong)rng.Pick<int>([3, 3, 4, 1, 7]) : rng.Below(8UL)) << 3) | (rng.Chance(30) ? 0x40UL : 0)
                | (rng.Chance(10) ? 1UL << (7 + rng.Below(5)) : 0) | ((rng.NextU64() & 0xFFFF) << 12);
            return EptpStep.FromRaw(raw);
        }

        return Eptp(rng, f.Cpu);
    }

    private static CpuStep Cpu(Prng rng, CpuProfile profile)
    {
        switch (profile)
        {
            case CpuProfile.Default:
                return new CpuStep();
            case CpuProfile.Full:
                return new CpuStep(MaxPhyAddr: 52, ExecuteOnly: true, Page2M: true, Page1G: true, AccessedDirty: true, Mbec: true, Walk5: true, AdvancedExitInfo: true, EptpUc: true, EptpWb: true);
            case CpuProfile.Minimal:
                return new CpuStep(MaxPhyAddr: 36, ExecuteOnly: false, Page2M: true, Page1G: false, AccessedDirty: false, Mbec: false, Walk5: false, AdvancedExitInfo: false, EptpUc: false, EptpWb: true);
        }

        // Random: each key is written or left to its default, so both paths are exercised.
        return new CpuStep(
            MaxPhyAddr: rng.Chance(75) ? rng.Pick<int>([36, 39, 40, 42, 46, 48, 52]) : null,
            ExecuteOnly: rng.Chance(30) ? rng.Chance(70) : null,
            Page2M: rng.Chance(15) ? rng.Chance(80) : null,
            Page1G: rng.Chance(30) ? rng.Chance(60) : null,
            AccessedDirty: rng.Chance(40) ? rng.Chance(60) : null,
            Mbec: rng.Chance(50) ? rng.Chance(70) : null,
            Walk5: rng.Chance(50) ? rng.Chance(70) : null,
            AdvancedExitInfo: rng.Chance(40) ? rng.Chance(70) : null,
            EptpUc: rng.Chance(10) ? rng.Coin() : null,
            EptpWb: rng.Chance(5) ? rng.Chance(80) : null);
    }

    private static EptpStep Eptp(Prng rng, CpuCapabilities cpu)
    {
        int? walk = cpu.Walk5 && rng.Chance(60) ? 5 : rng.Chance(30) ? 4 : null;
        if (rng.Chance(3))
        {
            walk = 5; // asked of a processor that may lack it
        }

        bool? ad = rng.Chance(60) ? cpu.AccessedDirty ? rng.Chance(70) : rng.Chance(10) : null;
        MemoryType? mt = rng.Chance(25) ? rng.Chance(80) ? MemoryType.UC : MemoryType.WB : null;
        return new EptpStep(null, mt, walk, ad);
    }
}

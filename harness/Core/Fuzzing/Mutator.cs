using EptFuzz.Contract;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// Mutates kept cases: insert, delete, swap and tweak steps, or splice two cases. Every mutant is
/// a valid case (<see cref="CaseShape.Repair"/> restores the order rules a mutation may break),
/// and is a pure function of the parent(s) and the random stream.
/// </summary>
public static class Mutator
{
    /// <summary>The longest case a mutation may produce.</summary>
    public const int MaxSteps = 256;

    /// <param name="maxSteps">The longest mutant (at most <see cref="MaxSteps"/>): keeps kept cases from growing run after run.</param>
    public static EptCase Mutate(EptCase parent, Prng rng, EptCase? other = null, int maxSteps = MaxSteps)
    {
        ArgumentNullException.ThrowIfNull(parent);
        ArgumentNullException.ThrowIfNull(rng);
        var steps = new List<Step>(parent.Steps.Length + 8);
        foreach (Step s in parent.Steps)
        {
            steps.Add(s);
        }

        int rounds = 1 + rng.Below(4);
        for (int r = 0; r < rounds; r++)
        {
            switch (rng.Weighted([30, 20, 10, 30, other is null ? 0 : 10]))
            {
                case 0:
                    Insert(steps, rng, 1 + rng.Below(3));
                    break;
                case 1:
                    Delete(steps, rng, 1 + rng.Below(3));
                    break;
                case 2:
                    Swap(steps, rng);
                    break;
                case 3:
                    Tweak(steps, rng);
                    break;
                default:
                    Splice(steps, rng, other!);
                    break;
            }
        }

        int cap = Math.Clamp(maxSteps, 4, MaxSteps);
        if (steps.Count > cap)
        {
            steps.RemoveRange(cap, steps.Count - cap);
        }

        CaseShape.Repair(steps);
        return new EptCase(steps, sourceName: parent.SourceName);
    }

    /// <summary>The first index a mutation may touch: after <c>cpu</c> and the first <c>eptp</c>.</summary>
    private static int Prefix(List<Step> steps)
    {
        int i = 0;
        if (i < steps.Count && steps[i] is CpuStep)
        {
            i++;
        }

        if (i < steps.Count && steps[i] is EptpStep)
        {
            i++;
        }

        return i;
    }

    /// <summary>A factory that knows the case up to <paramref name="position"/>.</summary>
    private static StepFactory FactoryAt(List<Step> steps, int position, Prng rng)
    {
        CpuCapabilities cpu = steps.Count > 0 && steps[0] is CpuStep c ? c.ToCapabilities() : CpuCapabilities.Default;
        var f = new StepFactory(rng, cpu);
        for (int i = 0; i < position && i < steps.Count; i++)
        {
            f.Learn(steps[i]);
        }

        return f;
    }

    private static void Insert(List<Step> steps, Prng rng, int count)
    {
        int prefix = Prefix(steps);
        for (int k = 0; k < count && steps.Count < MaxSteps; k++)
        {
            int at = prefix + rng.Below(steps.Count - prefix + 1);
            StepFactory f = FactoryAt(steps, at, rng);
            if (f.GuestPaging && rng.Chance(4))
            {
                // A guest page with a PAT index, an INVEPT and an access: several steps at once.
                foreach (Step typed in f.TypedGMap())
                {
                    if (steps.Count < MaxSteps)
                    {
                        steps.Insert(at++, typed);
                    }
                }

                continue;
            }

            Step step = rng.Weighted([45, 40, 8, f.GuestPaging ? 7 : 0, 2, f.GuestPaging ? 2 : 0, 3]) switch
            {
                0 => f.Operation(),
                1 => f.Probe(),
                2 => f.Edit(),
                3 => f.GMap(),
                4 => f.Poke(),
                5 => f.GEdit(),
                _ => new InveptStep(rng.Chance(70) ? InveptType.SingleContext : InveptType.Global),
            };
            steps.Insert(at, step);

            // A probe right after what was inserted looks at its effect.
            if (step.Category == StepCategory.Operation && rng.Chance(50) && steps.Count < MaxSteps)
            {
                steps.Insert(at + 1, f.Probe());
            }
        }
    }

    private static void Delete(List<Step> steps, Prng rng, int count)
    {
        int prefix = Prefix(steps);
        for (int k = 0; k < count && steps.Count > prefix + 1; k++)
        {
            int at = prefix + rng.Below(steps.Count - prefix);
            int length = Math.Min(rng.Chance(80) ? 1 : 1 + rng.Below(4), steps.Count - at);
            steps.RemoveRange(at, length);
        }
    }

    private static void Swap(List<Step> steps, Prng rng)
    {
        int prefix = Prefix(steps);
        if (steps.Count - prefix < 2)
        {
            return;
        }

        int a = prefix + rng.Below(steps.Count - prefix);
        int b = rng.Chance(70) ? Math.Min(a + 1, steps.Count - 1) : prefix + rng.Below(steps.Count - prefix);
        (steps[a], steps[b]) = (steps[b], steps[a]);
    }

    /// <summary>
    /// Changes one field of one step, of any kind: a neighbouring address, another size,
    /// permission, memory type, level, bit, access kind, processor capability, EPTP field, guest
    /// paging control, memory range or identity-map offset.
    /// </summary>
    private static void Tweak(List<Step> steps, Prng rng)
    {
        // The processor and the first EPTP are tweaked too, now and then (never deleted or moved).
        int prefix = rng.Chance(8) ? 0 : Prefix(steps);
        if (steps.Count == prefix)
        {
            return;
        }

        int at = prefix + rng.Below(steps.Count - prefix);
        StepFactory f = FactoryAt(steps, at, rng);
        steps[at] = steps[at] switch
        {
            MapStep m => rng.Below(4) switch
            {
                0 => m with { Permissions = Flip(m.Permissions, rng) },
                1 => m with { Size = OtherSize(m.Size, rng) },
                2 => m with { Gpa = new Gpa(Neighbour(m.Gpa.Value, rng)) },
                _ => m with { MemoryType = rng.Pick<MemoryType>([MemoryType.UC, MemoryType.WB, MemoryType.WT, (MemoryType)2]), IgnorePat = rng.Coin() },
            },
            ProtectStep p => rng.Coin() ? p with { Permissions = Flip(p.Permissions, rng) } : p with { Size = OtherSize(p.Size, rng) },
            UnmapStep u => rng.Coin() ? u with { Gpa = new Gpa(Neighbour(u.Gpa.Value, rng)) } : u with { Size = OtherSize(u.Size, rng) },
            RetypeStep r => r with { MemoryType = rng.Pick<MemoryType>([MemoryType.UC, MemoryType.WC, MemoryType.WB, (MemoryType)3, (MemoryType)7]) },
            SplitStep s => s with { Gpa = new Gpa(Neighbour(s.Gpa.Value, rng)) },
            MergeStep m => m with { Size = m.Size == 1UL << 21 ? 1UL << 30 : 1UL << 21 },
            AccessStep { Gva: null } a => rng.Coin()
                ? a with { Kind = (AccessKind)(((int)a.Kind + 1 + rng.Below(2)) % 3) }
                : a with { Gpa = new Gpa(Neighbour(a.Gpa!.Value.Value, rng)) },
            AccessStep a => rng.Coin()
                ? a with { Kind = (AccessKind)(((int)a.Kind + 1 + rng.Below(2)) % 3) }
                : a with { Cpl = a.Cpl == 3 ? (byte)0 : (byte)3 },
            EditStep e => rng.Coin() ? e with { Level = (EptLevel)(byte)(1 + rng.Below(f.WalkLength)) } : f.Edit(),
            EntryStep e => e with { Level = (EptLevel)(byte)(1 + rng.Below(f.WalkLength)) },
            GMapStep g => rng.Below(3) switch
            {
                0 => g with { Permissions = (GuestPagePermissions)rng.Below(8) },
                1 => g with { Size = OtherSize(g.Size, rng) },
                _ => g with { Gpa = new Gpa(Neighbour(g.Gpa.Value, rng)) },
            },
            GEditStep ge => rng.Coin() ? ge with { Level = (EptLevel)(byte)(1 + rng.Below(4)) } : f.GEdit(),
            PokeStep => f.Poke(),
            InveptStep inv => inv with { Type = inv.Type == InveptType.Global ? InveptType.SingleContext : InveptType.Global },
            IdentityMapStep im => TweakIdentityMap(im, rng),
            MemoryStep mem => rng.Coin()
                ? mem with { MemoryType = rng.Pick<MemoryType>([MemoryType.UC, MemoryType.WC, MemoryType.WT, MemoryType.WP, MemoryType.WB, (MemoryType)2]) }
                : mem with { End = new Gpa(MovedEnd(mem, rng)) },
            GuestStep { Paging: true } gs => rng.Below(4) switch
            {
                0 => gs with { Wp = !(gs.Wp ?? true) },
                1 => gs with { Nxe = !(gs.Nxe ?? false) },
                2 => gs with { Smep = !(gs.Smep ?? false) },
                _ => gs with { Pat = ValidPat(rng) },
            },
            ControlsStep c => c with { Mbec = !(c.Mbec ?? false) },
            EptpStep { Raw: { } raw } e => e with { Raw = raw ^ (1UL << rng.Below(12)) },
            EptpStep e => rng.Below(3) switch
            {
                0 => e with { WalkLength = e.WalkLength == 5 ? 4 : 5 },
                1 => e with { AccessedDirty = !(e.AccessedDirty ?? false) },
                _ => e with { MemoryType = e.MemoryType == MemoryType.UC ? MemoryType.WB : MemoryType.UC },
            },
            CpuStep cpu => TweakCpu(cpu, rng),
            Step s when s.Category == StepCategory.Operation && s is not (GuestStep or EptpStep or ControlsStep or MemoryStep or IdentityMapStep) => f.Operation(),
            var s => s,
        };
    }

    /// <summary>A memory range's end moved by a 4K or 2M page either way (never a huge jump: an identity map of it is built page by page).</summary>
    private static ulong MovedEnd(MemoryStep mem, Prng rng)
    {
        ulong delta = rng.Coin() ? 1UL << 12 : 1UL << 21;
        ulong end = mem.End.Value;
        return rng.Coin() ? end + delta : end - delta > mem.Start.Value && end > delta ? end - delta : end + delta;
    }

    private static IdentityMapStep TweakIdentityMap(IdentityMapStep im, Prng rng) => rng.Below(4) switch
    {
        // An offset that keeps 1G, only 2M or only 4K alignment, or none.
        0 => im with { Offset = (1UL << 30) * (1 + rng.Below(4UL)), OffsetFrom = im.OffsetFrom ?? new Gpa(0) },
        1 => im with { Offset = (1UL << 21) * (1 + rng.Below(511UL)), OffsetFrom = im.OffsetFrom ?? new Gpa(0) },
        2 => im with { Offset = (1UL << 12) * (1 + rng.Below(511UL)), OffsetFrom = im.OffsetFrom ?? new Gpa(0) },
        _ => im.Offset is null ? im with { Offset = 1UL << 30, OffsetFrom = new Gpa(1UL << 21) } : new IdentityMapStep(),
    };

    /// <summary>A guest PAT whose eight entries are each a valid type (UC, WC, WT, WP, WB, UC-): the case format refuses the reserved 2 and 3.</summary>
    private static ulong ValidPat(Prng rng)
    {
        ulong pat = 0;
        for (int i = 0; i < 8; i++)
        {
            pat |= (ulong)rng.Pick<int>([0, 1, 4, 5, 6, 7]) << (8 * i);
        }

        return pat;
    }

    private static CpuStep TweakCpu(CpuStep c, Prng rng) => rng.Below(8) switch
    {
        0 => c with { MaxPhyAddr = rng.Pick<int>([36, 39, 40, 42, 46, 48, 52]) },
        1 => c with { ExecuteOnly = !(c.ExecuteOnly ?? true) },
        2 => c with { Page1G = !(c.Page1G ?? true) },
        3 => c with { AccessedDirty = !(c.AccessedDirty ?? true) },
        4 => c with { Mbec = !(c.Mbec ?? false) },
        5 => c with { Walk5 = !(c.Walk5 ?? false) },
        6 => c with { AdvancedExitInfo = !(c.AdvancedExitInfo ?? false) },
        _ => c with { Page2M = !(c.Page2M ?? true) },
    };

    private static void Splice(List<Step> steps, Prng rng, EptCase other)
    {
        int prefix = Prefix(steps);
        int cut = prefix + rng.Below(steps.Count - prefix + 1);
        var donor = other.Steps;
        int from = donor.Length == 0 ? 0 : rng.Below(donor.Length);
        steps.RemoveRange(cut, steps.Count - cut);
        for (int i = from; i < donor.Length && steps.Count < MaxSteps; i++)
        {
            if (donor[i] is not CpuStep)
            {
                steps.Add(donor[i]);
            }
        }
    }

    private static EptPermissions Flip(EptPermissions p, Prng rng) =>
        p ^ rng.Pick<EptPermissions>([EptPermissions.ReadAccess, EptPermissions.WriteAccess, EptPermissions.ExecuteAccess, EptPermissions.UserModeExecute]);

    private static ulong OtherSize(ulong size, Prng rng) => rng.Pick<ulong>([1UL << 12, 1UL << 21, 1UL << 30, 2UL << 12, size * 2]);

    /// <summary>The same address with one level's index moved to an edge value, or one page over.</summary>
    private static ulong Neighbour(ulong a, Prng rng)
    {
        if (rng.Chance(40))
        {
            return (rng.Coin() ? a + (1UL << 12) : a - Math.Min(a, 1UL << 12)) & ((1UL << 52) - 1);
        }

        int shift = 12 + (9 * rng.Below(4));
        ulong index = rng.Pick<ulong>([0, 1, 510, 511]);
        return ((a & ~(511UL << shift)) | (index << shift)) & ((1UL << 52) - 1);
    }
}

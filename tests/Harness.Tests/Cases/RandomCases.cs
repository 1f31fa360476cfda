using EptFuzz.Contract;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Tests.Cases;

/// <summary>
/// Builds random valid cases straight as ASTs (not through text), covering every verb, every
/// optional key present and absent, and every expectation form, to test printing and parsing.
/// </summary>
internal sealed class RandomCases
{
    private static readonly ulong[] Sizes = [1UL << 12, 1UL << 21, 1UL << 30, 0, 8192, 0x3000, ulong.MaxValue];
    private static readonly MemoryType[] Types = [MemoryType.UC, MemoryType.WC, MemoryType.WT, MemoryType.WP, MemoryType.WB, (MemoryType)2, (MemoryType)3, (MemoryType)7];
    private static readonly ApiResult[] Results = Enum.GetValues<ApiResult>();
    private static readonly string[] Comments = ["found by: eptfuzz fuzz --seed 0x5eed", "", "  indented # with a hash", "first divergence: step 5 (line 7)", "=> ok"];

    private readonly Xoshiro256 rng;

    public RandomCases(ulong seed)
    {
        rng = new Xoshiro256(seed);
    }

    public EptCase Next()
    {
        var steps = new List<Step>();
        if (rng.Chance(2))
        {
            steps.Add(Cpu());
        }

        steps.Add(Eptp());
        bool guestPaging = false;
        int memoryRanges = 0;
        int count = rng.Below(30);
        for (int i = 0; i < count; i++)
        {
            Step step = Any(ref guestPaging, ref memoryRanges);
            steps.Add(step with { Expectation = rng.Chance(3) ? null : ExpectationFor(step.Category) });
        }

        var comments = new List<string>();
        int commentCount = rng.Below(4);
        for (int i = 0; i < commentCount; i++)
        {
            comments.Add(rng.Pick(Comments));
        }

        return new EptCase(steps, comments, "random.ept");
    }

    private Step Any(ref bool guestPaging, ref int memoryRanges)
    {
        switch (rng.Below(21))
        {
            case 0: return Eptp();
            case 1: return new ControlsStep(Bool());
            case 2:
                guestPaging = rng.Chance(2);
                return guestPaging ? Guest4Level() : GuestStep.Off();
            case 3: return new MapStep(new Gpa(Address()), new Hpa(Address()), Size(), Perm(), Maybe(Type), Bool());
            case 4: return new UnmapStep(new Gpa(Address()), Size());
            case 5: return new ProtectStep(new Gpa(Address()), Size(), Perm());
            case 6: return new RetypeStep(new Gpa(Address()), Size(), Type(), Bool());
            case 7: return new SplitStep(new Gpa(Address()));
            case 8: return new MergeStep(new Gpa(Address()), Size());
            case 9:
                memoryRanges++;
                ulong start = (ulong)rng.Below(1 << 20) << 12;
                return new MemoryStep(new Gpa(start), new Gpa(start + ((ulong)rng.Below(1 << 10) + 1 << 12)), Type());
            case 10:
                // Few ranges of at most 4 MiB each keep every identity-map far below the leaf limit.
                return rng.Chance(2) ? new IdentityMapStep() : new IdentityMapStep(Address(), new Gpa(Address()));
            case 11: return new InveptStep(rng.Chance(2) ? InveptType.SingleContext : InveptType.Global);
            case 12: return new EditStep(new Gpa(Address()), Level(5), MaybeNumber(), MaybeNumber(), rng.Chance(2) ? new Hpa(Address()) : null);
            case 13: return new PokeStep(new Hpa(Address()), Number());
            case 14:
                if (!guestPaging)
                {
                    guestPaging = true;
                    return Guest4Level();
                }

                return new GMapStep(new Gva(Number()), new Gpa(Address()), Size(), (GuestPagePermissions)rng.Below(8));
            case 15:
                if (!guestPaging)
                {
                    guestPaging = true;
                    return Guest4Level();
                }

                return new GEditStep(new Gva(Number()), Level(4), MaybeNumber(), MaybeNumber());
            case 16: return AccessStep.Physical(Kind(), new Gpa(ProbeGpa()));
            case 17: return AccessStep.Linear(Kind(), new Gva(Number()), rng.Below(3) switch { 0 => null, 1 => (byte)0, _ => (byte)3 });
            case 18: return new EntryStep(new Gpa(ProbeGpa()), Level(5));
            case 19: return new VmEntryStep();
            default: return memoryRanges > 0 ? new IdentityMapStep() : new VmEntryStep();
        }
    }

    private CpuStep Cpu() => new(
        rng.Chance(2) ? null : 32 + rng.Below(21),
        Bool(), Bool(), Bool(), Bool(), Bool(), Bool(), Bool(), Bool(), Bool());

    private EptpStep Eptp() => rng.Chance(3)
        ? EptpStep.FromRaw(Number())
        : new EptpStep(null, Maybe(Type), rng.Below(3) switch { 0 => null, 1 => 4, _ => 5 }, Bool());

    private GuestStep Guest4Level()
    {
        ulong tablesStart = (ulong)(rng.Below(1 << 16) + 16) << 12;
        ulong tablesEnd = tablesStart + ((ulong)(rng.Below(64) + 1) << 12);
        ulong cr3 = (ulong)rng.Below(16) << 12;
        ulong? pat = rng.Below(3) switch
        {
            0 => null,
            1 => GuestPaging.PowerOnPat,
            _ => Pat(),
        };
        return new GuestStep(true, new Gpa(cr3), new Gpa(tablesStart), new Gpa(tablesEnd), Bool(), Bool(), Bool(), pat);
    }

    private ulong Pat()
    {
        byte[] valid = [0, 1, 4, 5, 6, 7];
        ulong pat = 0;
        for (int i = 0; i < 8; i++)
        {
            pat |= (ulong)valid[rng.Below(valid.Length)] << (8 * i);
        }

        return pat;
    }

    private Expectation ExpectationFor(StepCategory category) => category switch
    {
        StepCategory.Operation => Expect.Result(rng.Pick(Results)),
        StepCategory.Access => rng.Below(4) switch
        {
            0 => Expect.Translated(new Hpa(Address()), Maybe(Type), rng.Chance(2) ? Size() : null),
            1 => Expect.Violation(Number(), rng.Chance(2) ? new Gpa(Address()) : null, rng.Chance(2) ? new Gva(Number()) : null),
            2 => Expect.Misconfig(rng.Chance(2) ? new Gpa(Address()) : null),
            _ => Expect.PageFault((uint)Number()),
        },
        StepCategory.Entry => Expect.Entry(rng.Chance(2), rng.Chance(2), MaybeNumber()),
        _ => Expect.VmEntry(rng.Chance(2)),
    };

    private bool? Bool() => rng.Below(3) switch { 0 => null, 1 => false, _ => true };

    private T? Maybe<T>(Func<T> make)
        where T : struct => rng.Chance(2) ? null : make();

    private MemoryType Type() => rng.Pick(Types);

    private EptPermissions Perm() => (EptPermissions)rng.Below(16);

    private EptLevel Level(int max) => (EptLevel)(byte)(rng.Below(max) + 1);

    private AccessKind Kind() => (AccessKind)(byte)rng.Below(3);

    private ulong Size() => rng.Chance(4) ? rng.Next() >> rng.Below(64) : rng.Pick(Sizes);

    private ulong? MaybeNumber() => rng.Chance(2) ? null : Number();

    /// <summary>Mostly page-aligned addresses of every magnitude, sometimes anything.</summary>
    private ulong Address() => rng.Below(4) switch
    {
        0 => rng.Next(),
        1 => (ulong)rng.Below(1 << 20) << 12,
        _ => (rng.Next() >> rng.Below(64)) & ~0xfffUL,
    };

    private ulong ProbeGpa() => Address() & ((1UL << 52) - 1);

    private ulong Number() => rng.Next() >> rng.Below(64);
}
